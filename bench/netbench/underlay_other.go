//go:build !linux

package netbench

import (
	"context"
	"errors"
	"os/exec"
)

var errNotLinux = errors.New("netbench: network namespaces need Linux")

// Underlay needs Linux; elsewhere NewUnderlay fails.
type Underlay struct{ A, B Host }

// NewUnderlay fails: network namespaces need Linux.
func NewUnderlay() (*Underlay, error) { return nil, errNotLinux }

// Close does nothing.
func (u *Underlay) Close() error { return nil }

// OnClose does nothing.
func (u *Underlay) OnClose(func() error) {}

// Start fails: network namespaces need Linux.
func (u *Underlay) Start(string, *exec.Cmd) error { return errNotLinux }

// Iperf3 fails: network namespaces need Linux.
func (u *Underlay) Iperf3(context.Context, Endpoints, ...Run) ([]Result, error) {
	return nil, errNotLinux
}

func setupVXLAN(*Underlay) (Endpoints, error) { return Endpoints{}, errNotLinux }

func setupOpenvpcTun(*Underlay) (Endpoints, error) { return Endpoints{}, errNotLinux }

func setupOpenvpcVethFast(*Underlay) (Endpoints, error) { return Endpoints{}, errNotLinux }

// OpenvpcDX needs Linux.
var OpenvpcDX = Path{Name: "openvpc direct connect", Setup: func(*Underlay) (Endpoints, error) { return Endpoints{}, errNotLinux }}

// OpenvpcDXInternet needs Linux.
var OpenvpcDXInternet = Path{Name: "openvpc internet, same edge", Setup: func(*Underlay) (Endpoints, error) { return Endpoints{}, errNotLinux }}
