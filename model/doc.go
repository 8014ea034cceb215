// Package model holds openvpc's domain value types and rules: resource ids,
// names, CIDRs, VNIs, MACs and the error kinds shared by the control plane.
// It does no I/O.
package model
