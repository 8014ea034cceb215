//go:build !linux

package main

import "syscall"

// childAttr: outside Linux there is no parent-death signal; t.Cleanup
// stops the servers.
func childAttr() *syscall.SysProcAttr { return nil }
