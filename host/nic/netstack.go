package nic

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/packet"
)

// Netstack is an instance whose TCP/IP stack is a gVisor netstack in this
// process. Programs reach into it through Net (Dial, Listen, Ping).
type Netstack struct {
	dev tun.Device
	// Net is the instance's network stack, for dialing and listening as
	// the instance.
	Net *netstack.Net
}

var _ NIC = (*Netstack)(nil)

// NewNetstack creates an instance stack with address ip and the given MTU;
// all its traffic goes through the port (default route), as on a VPC.
// Its Net.LookupHost asks resolvers (the VPC resolver), as a TUN
// instance's resolv.conf does.
func NewNetstack(ip netip.Addr, mtu int, resolvers ...netip.Addr) (*Netstack, error) {
	dev, n, err := netstack.CreateNetTUN([]netip.Addr{ip}, resolvers, mtu)
	if err != nil {
		return nil, fmt.Errorf("nic: netstack for %s: %w", ip, err)
	}
	return &Netstack{dev: dev, Net: n}, nil
}

// Read implements datapath.Port: packets land after packet.Headroom.
func (s *Netstack) Read(bufs [][]byte, sizes []int) (int, error) {
	return s.dev.Read(bufs, sizes, packet.Headroom)
}

// Write implements datapath.Port.
func (s *Netstack) Write(pkts [][]byte) error {
	_, err := s.dev.Write(pkts, 0)
	return err
}

// BatchSize implements datapath.Port.
func (s *Netstack) BatchSize() int { return s.dev.BatchSize() }

// Close stops the stack; a blocked Read returns an error.
func (s *Netstack) Close() error { return s.dev.Close() }

// DialContext implements NIC.
func (s *Netstack) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.Net.DialContext(ctx, network, addr)
}

// DialPing implements NIC with a netstack ping socket.
func (s *Netstack) DialPing(src, dst netip.Addr) (net.Conn, error) {
	return s.Net.DialPingAddr(src, dst)
}
