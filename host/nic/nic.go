// Package nic provides instance NICs: ports that the data plane reads an
// instance's packets from and writes its packets to. Netstack gives each
// instance its own userspace TCP/IP stack (no root needed); TUN gives it a
// Linux network namespace with a TUN device, where real programs run.
package nic

import (
	"context"
	"net"
	"net/netip"
)

// NIC is one instance's network interface as its host agent holds it: a
// data plane port (the methods of datapath.Port), and a way for the agent
// to open connections as the instance (ping, connect, port-forwards).
type NIC interface {
	// Read, Write, BatchSize and Close are datapath.Port's.
	Read(bufs [][]byte, sizes []int) (int, error)
	Write(pkts [][]byte) error
	BatchSize() int
	// Close detaches the NIC and frees all it holds (for a TUN, its
	// network namespace too).
	Close() error

	// DialContext connects from inside the instance.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// DialPing returns a connection that writes ICMP echo requests (the
	// ICMP message, no IP header) from src to dst, and reads ICMP messages
	// from dst.
	DialPing(src, dst netip.Addr) (net.Conn, error)
}

// Instance is what a backend needs to know to give an instance its NIC.
type Instance struct {
	// ID is the instance id (i-…); a TUN's namespace is named after it.
	ID string
	// Addr is the instance's private address with its subnet's prefix
	// length, e.g. 10.0.1.5/24.
	Addr netip.Prefix
	// Gateway is the VPC router's address in the subnet: the default route.
	Gateway netip.Addr
	// MTU is the largest packet the instance may send.
	MTU int
	// Resolver is the VPC resolver's address (the VPC's base+2): a TUN
	// instance's resolv.conf names it. Unset, the instance gets none.
	Resolver netip.Addr
}

// Backend makes NICs of one kind for one host agent.
type Backend interface {
	// Open gives an instance its NIC. A backend that keeps state outside
	// the process (a namespace) adopts what a crashed predecessor left for
	// the same instance.
	Open(inst Instance) (NIC, error)
	// Sweep removes what the backend owns for instances other than keep
	// (instance ids) and not open now: what a crash left behind for
	// instances that were terminated meanwhile.
	Sweep(keep map[string]bool) error
	// Close releases the backend; NICs must be closed first.
	Close() error
	String() string
}

// NetstackBackend gives each instance a gVisor netstack in this process.
type NetstackBackend struct{}

// Open implements Backend.
func (NetstackBackend) Open(inst Instance) (NIC, error) {
	if inst.Resolver.IsValid() {
		return NewNetstack(inst.Addr.Addr(), inst.MTU, inst.Resolver)
	}
	return NewNetstack(inst.Addr.Addr(), inst.MTU)
}

// Sweep implements Backend: netstacks die with the process, nothing is
// ever left behind.
func (NetstackBackend) Sweep(map[string]bool) error { return nil }

// Close implements Backend.
func (NetstackBackend) Close() error { return nil }

func (NetstackBackend) String() string { return "netstack" }

// NamespacePrefix starts the name of every instance network namespace.
const NamespacePrefix = "ovpc-"

// NamespaceName is the network namespace (under /run/netns) of a TUN
// instance: ovpc-i-0123456789abcdef. Instance ids are random and unique
// across a cloud, so the name needs no host part; which agent owns a
// namespace is recorded in that agent's state directory instead.
func NamespaceName(instanceID string) string { return NamespacePrefix + instanceID }
