package main

import "errors"

// runDag is being written.
func runDag(args []string) error { return errors.New("not implemented yet") }
