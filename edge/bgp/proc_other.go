//go:build !linux

package bgp

import "syscall"

func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
