//go:build !linux

// Package vlan carries a Direct Connect port's 802.1Q tags with TC-eBPF;
// it exists on Linux only.
package vlan
