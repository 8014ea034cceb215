// Package fastpath provides the kernel fast path of a host: an eBPF flow
// cache that replays decisions the Go story (host/dataplane) made, for
// instances on veth NICs (host/nic.VethBackend).
//
// The Go story stays the one place where decisions are made. A program on
// the host end of each instance's veth (TCX ingress) looks up an exact
// match (the veth, the 5-tuple) and, on a hit, encapsulates with the outer
// IPv4/UDP/Geneve header the Go story decided and redirects to the
// underlay device, or hands the packet to a local instance's veth
// (bpf_redirect_peer). A program on the underlay device does the same for
// Geneve from the wire, keyed by outer source, VNI, SourceVPC and inner
// 5-tuple: it decapsulates and redirects into the instance's namespace.
// A miss passes the packet on unchanged to the agent, whose story forwards
// it and, for a decision the cache may replay (dataplane.Result.Cacheable),
// installs the entry.
//
// Invalidation is the correctness rule: each entry carries the generation
// of the snapshot it was decided on, and tables.OnPublish sets the
// generation the programs accept before a new snapshot is published, so
// no entry outlives its snapshot. Entries also expire after Lifetime, so
// the Go story sees every flow now and then (connection tracking stays
// fresh), and SYN, FIN and RST segments always take it.
package fastpath
