// Package packet reads and writes the headers openvpc handles (IPv4, UDP, TCP, ICMPv4, ARP, Geneve)
// as zero-allocation views over byte slices, with checksums, encapsulation and flow hashing.
//
// A view such as IPv4 is the packet's own bytes: accessors read them in place and setters write
// them in place, so a view never owns memory and never allocates. Accessors assume the view is
// long enough; call Valid first (on untrusted input, always) — they panic on a too-short slice
// the way an out-of-range index does, because that is a bug in the caller, not a bad packet.
// Decoders that face the wire (ParseEncap, ParseGeneveOptions) return false instead of failing,
// so that the data path can turn a malformed packet into a verdict.
//
// This package imports the standard library only.
package packet
