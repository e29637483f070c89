//go:build !linux

package main

// takeTerminal does nothing outside Linux.
func takeTerminal() (restore func()) { return func() {} }
