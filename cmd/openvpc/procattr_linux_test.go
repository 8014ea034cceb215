package main

import "syscall"

// childAttr makes a server started by a test die with the test binary, so a
// crashed or killed test run leaves no server (and no embedded etcd) behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
