//go:build !linux

// Package vlan carries a Direct Connect port's 802.1Q tags with TC-eBPF;
// it works on Linux only.
package vlan

// Counters are the port's frame counts.
type Counters struct {
	In, Out, Untagged, UnknownVLAN, Errors, Local uint64
}
