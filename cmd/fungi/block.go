package main

import "errors"

// runBlock is being written.
func runBlock(args []string) error { return errors.New("not implemented yet") }
