package main

import "errors"

// runConfig is being written.
func runConfig(args []string) error { return errors.New("not implemented yet") }
