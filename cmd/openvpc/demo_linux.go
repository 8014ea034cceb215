//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

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
func demoReexec(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "/proc/self/exe", append(os.Args[1:], demoInNetns)...)
	// Interrupted, the child cleans up (it stops charon and bgpd, deletes
	// the namespaces it named): pass the signal on and give it time.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
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
