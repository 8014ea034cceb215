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
