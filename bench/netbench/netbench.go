// Package netbench measures TCP throughput with iperf3 between two network
// namespaces joined by a veth pair — two "hosts" and their wire — over
// paths built on that wire: the veth itself, kernel VXLAN, and (once
// `openvpc host --nic tun` exists) openvpc's own TUN instances (figure P2).
//
// Everything it makes is named ovb-<pid>-… and lives inside namespaces it
// created; Close removes it all, also after a failed setup. Nothing is ever
// added to the root namespace.
package netbench

import (
	"net/netip"
	"time"
)

// netnsDir is where named network namespaces live (as `ip netns` keeps them).
const netnsDir = "/run/netns"

// Host is one side of the underlay: a network namespace standing in for a
// physical host, with its end of the veth pair.
type Host struct {
	NS       string       // namespace name: `ip netns exec NS …` works while the Underlay is open
	Link     string       // its end of the veth pair
	Underlay netip.Prefix // its underlay address on Link
}

// Endpoints says where iperf3 runs over a path: the server in ServerNS,
// listening on ServerAddr, and the client in ClientNS.
type Endpoints struct {
	ServerNS, ClientNS string
	ServerAddr         netip.Addr
}

// A Path is one way for TCP to get from host A to host B. Setup builds it
// over u — registering whatever it starts or creates with u.OnClose or
// u.Start, so that u.Close undoes it — and says where iperf3 runs.
type Path struct {
	Name  string
	Setup func(u *Underlay) (Endpoints, error)
}

// Veth is the bare wire: iperf3 between the two host namespaces.
var Veth = Path{Name: "veth", Setup: func(u *Underlay) (Endpoints, error) {
	return Endpoints{ServerNS: u.B.NS, ClientNS: u.A.NS, ServerAddr: u.B.Underlay.Addr()}, nil
}}

// KernelVXLAN is Linux's own overlay on the same wire: a VXLAN device in
// each host namespace, overlay addresses on them, iperf3 between those.
// It is what openvpc's TUN path is compared with (the kernel has no Geneve
// device here, and VXLAN's encapsulation costs the same).
var KernelVXLAN = Path{Name: "kernel VXLAN", Setup: setupVXLAN}

// OpenvpcTun is the subject of P2: one `openvpc host --nic tun` agent in
// each host namespace (underlay addresses u.A.Underlay and u.B.Underlay on
// u.A.Link and u.B.Link), an instance on each, iperf3 between the instances'
// namespaces. Its Setup is nil until `openvpc host --nic tun` exists
// (issue 5), and the harness reports the row as skipped until then.
//
// To plug it in, set Setup to a function that starts the control plane and
// one agent per host namespace with u.Start (so Close stops them), runs one
// instance on each host, waits until both are running, and returns the
// instances' namespaces and the server instance's private address.
var OpenvpcTun = Path{Name: "openvpc tun"}

// Run is one iperf3 measurement: Streams parallel TCP streams for Duration.
type Run struct {
	Streams  int
	Duration time.Duration
}

// Result is what one iperf3 run measured, at the receiver.
type Result struct {
	BitsPerSecond float64
	Retransmits   int // at the sender, summed over streams
}

// Gbps is the throughput in Gbit/s.
func (r Result) Gbps() float64 { return r.BitsPerSecond / 1e9 }
