// Package datapath is the vocabulary every data plane of openvpc speaks —
// the host's and Blackfoot's alike: verdicts and their counters, flow
// records, security events, instance and outside ports, and the tracer a
// story records its steps with when `openvpc trace` asks.
package datapath
