// Package nsthread runs code on an OS thread inside another network
// namespace without moving the rest of the process.
//
// A network namespace belongs to a thread, and Go moves goroutines between
// threads: code that enters a namespace must lock its goroutine to its
// thread, and must put that thread back before unlocking it, or another
// goroutine later runs in the wrong namespace. Every function here runs fn
// on a fresh goroutine locked to its thread and returns the thread to the
// caller's namespace afterwards, whatever fn did to it (entered another
// namespace, unshared a new one). A thread that cannot be put back is
// never unlocked: its goroutine ends locked, so Go retires the thread.
//
// Sockets, devices and processes fn creates stay in the namespace they
// were created in.
package nsthread

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run runs fn on a locked OS thread of its own and puts the thread back
// in the caller's network namespace afterwards.
func Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("nsthread: reading this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("nsthread: cannot return to the process's network namespace (the thread is retired): %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// In runs fn on a locked OS thread inside network namespace ns.
func In(ns netns.NsHandle, fn func() error) error {
	return Run(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("nsthread: entering network namespace: %w", err)
		}
		return fn()
	})
}

// InPath runs fn on a locked OS thread inside the network namespace at
// path (/run/netns/NAME, /proc/PID/ns/net).
func InPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("nsthread: network namespace %s: %w", path, err)
	}
	defer ns.Close()
	return In(ns, fn)
}

// InNamed runs fn on a locked OS thread inside the named network
// namespace (/run/netns/name, as `ip netns` makes them).
func InNamed(name string, fn func() error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("nsthread: network namespace %q: %w", name, err)
	}
	defer ns.Close()
	return In(ns, fn)
}
