//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// demoInNetns is the hidden flag the demo re-executes itself with, in a
// network and mount namespace of its own.
const demoInNetns = "--in-own-netns"

// demoReexec runs this command again in new network and mount namespaces
// (CLONE_NEWNET|CLONE_NEWNS): everything the VPN and Direct Connect scenes
// make — the loopback underlay, TUNs, veths, site namespaces — lives in
// namespaces openvpc created and goes with the process.
func demoReexec() error {
	cmd := exec.Command("/proc/self/exe", append(os.Args[1:], demoInNetns)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		return fmt.Errorf("the demo in a namespace of its own: %w", err)
	}
	return nil
}

// demoEnterNetns prepares the namespace demoReexec made: mounts stay in
// it (named site namespaces are bind mounts), and lo is up.
func demoEnterNetns() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the demo's mounts private: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}
