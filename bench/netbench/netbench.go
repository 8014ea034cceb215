// Package netbench measures TCP throughput with iperf3 between two network
// namespaces joined by a veth pair — two "hosts" and their wire — over
// paths built on that wire: the veth itself, kernel VXLAN, and openvpc's
// own TUN instances (figure P2).
//
// Everything it makes is named ovb-<pid>-… (namespaces, a temporary
// directory) or lives inside namespaces it created; Close removes it all,
// also after a failed setup. Nothing is ever added to the root namespace.
package netbench

import (
	"net/netip"
	"time"
)

// netnsDir is where named network namespaces live (as `ip netns` keeps them).
const netnsDir = "/run/netns"

// nsPrefix starts the name of every namespace (ovb-<pid>-<n><side>) and
// temporary directory (ovb-<pid>-…) this package makes.
const nsPrefix = "ovb-"

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

// OpenvpcTun is the subject of P2: openvpc itself on the same wire. Setup
// builds the openvpc binary, starts `openvpc server` in host A and an
// `openvpc host run --nic tun` agent in each host namespace, runs one instance
// on each host through the CLI and returns the instances' namespaces
// (ovpc-<instance-id>, made by the agents) and the private address of the
// instance on host B. Close stops the agents with SIGTERM, so that they
// remove those namespaces themselves, then the server.
//
// Each packet crosses the agent twice: its instance's TUN device into
// userspace, Geneve over the agent's UDP socket on the veth, and the
// other agent's TUN device into the other instance's namespace.
var OpenvpcTun = Path{Name: "openvpc tun", Setup: setupOpenvpcTun}

// OpenvpcVethFast is OpenvpcTun with veth NICs and the kernel fast path
// (`--nic veth --fastpath on`): after a flow's first packets, which the
// agents decide, the kernel encapsulates, redirects and decapsulates on
// its own, replaying those decisions.
var OpenvpcVethFast = Path{Name: "openvpc veth (fast path)", Setup: setupOpenvpcVethFast}

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
