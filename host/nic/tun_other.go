//go:build !linux

package nic

import "errors"

// TUNAvailable reports whether this process can make TUN instances: only
// on Linux.
func TUNAvailable() bool { return false }

// NewTUNBackend fails: TUN instances need Linux network namespaces.
func NewTUNBackend(string) (Backend, error) {
	return nil, errors.New("nic: TUN instances need Linux (network namespaces); use --nic netstack")
}

// VethAvailable reports whether this process can make veth instances:
// only on Linux.
func VethAvailable() bool { return false }

// NewVethBackend fails: veth instances need Linux network namespaces.
func NewVethBackend(string) (Backend, error) {
	return nil, errors.New("nic: veth instances need Linux (network namespaces); use --nic netstack")
}
