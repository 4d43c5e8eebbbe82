package main

import "errors"

// runRouting is being written.
func runRouting(args []string) error { return errors.New("not implemented yet") }
