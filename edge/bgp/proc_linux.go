package bgp

import "syscall"

// childAttr makes a speaker die with the edge that started it.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
