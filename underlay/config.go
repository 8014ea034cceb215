package underlay

import (
	"fmt"
	"net/netip"
)

// Defaults for NewConfig.
const (
	DefaultSourcePorts    = 16
	DefaultSourcePortBase = 49152 // the start of the dynamic range, where packet.SourcePort maps
	DefaultBatchSize      = 32
	DefaultSocketBuffer   = 4 << 20
)

// maxBatchSize is UIO_MAXIOV, the most messages one recvmmsg or sendmmsg takes.
const maxBatchSize = 1024

// Config is how Listen sets up a host's underlay sockets. Start from NewConfig.
type Config struct {
	// Port is the UDP port datagrams are received on: Port (6081), or 0 to let the kernel
	// choose one (tests; see UDPConn.LocalAddrPort).
	Port uint16

	// SourcePorts is K, the number of sender sockets. A socket can only send from the port
	// it is bound to, so the outer source port cannot be chosen per datagram: a datagram
	// leaves from sender socket Datagram.SrcPort % K instead. One flow therefore always
	// leaves from the same port (its packets stay in order on one ECMP path), and different
	// flows spread over K ports: the underlay's routers see K values of entropy (16: 4 bits)
	// rather than the 14 bits of packet.SourcePort. 1–256.
	SourcePorts int

	// SourcePortBase is the first port tried for the sender sockets. They take the first K
	// free ports at or above it, in order: a port already in use (by another program, or
	// another host's socket on a wildcard address) is skipped, shifting the rest up; Listen
	// fails only if fewer than K ports up to 65535 are free. 0 lets the kernel choose each
	// port (tests). See UDPConn.SourcePort for the port a SrcPort leaves from.
	SourcePortBase uint16

	// BatchSize is the most datagrams one system call moves (recvmmsg, sendmmsg); 1–1024.
	BatchSize int

	// Offload turns on UDP segmentation offload where the kernel has it (Linux ≥ 4.18 for
	// GSO, 5.0 for GRO): WriteBatch sends consecutive datagrams of one flow to one peer with
	// one size as a single large one that the kernel or NIC cuts up, and the receive socket
	// takes datagrams the kernel coalesced (GRO) and splits them again. With it, received
	// payloads are copied once from the socket's own buffers (BatchSize of 64 KiB each) into
	// the caller's; without it, the kernel writes them straight into the caller's buffers.
	// Over loopback it multiplies the datagrams per second of a single flow about tenfold.
	Offload bool

	// SocketBuffer is the size, in bytes, asked of the kernel for the receive socket's
	// buffer and each sender socket's send buffer, to ride out bursts; the kernel caps it at
	// net.core.rmem_max / wmem_max. 0 keeps the kernel's default.
	SocketBuffer int
}

// NewConfig returns the configuration of a production host: Port 6081, 16 source ports
// from 49152, batches of 32, offload on, 4 MiB socket buffers.
func NewConfig() Config {
	return Config{
		Port:           Port,
		SourcePorts:    DefaultSourcePorts,
		SourcePortBase: DefaultSourcePortBase,
		BatchSize:      DefaultBatchSize,
		Offload:        true,
		SocketBuffer:   DefaultSocketBuffer,
	}
}

// Validate reports a configuration Listen cannot use.
func (c *Config) Validate() error {
	if c.SourcePorts < 1 || c.SourcePorts > 256 {
		return fmt.Errorf("underlay: SourcePorts is %d; it must be 1–256 (default %d)", c.SourcePorts, DefaultSourcePorts)
	}
	if c.SourcePortBase != 0 && int(c.SourcePortBase)+c.SourcePorts-1 > 65535 {
		return fmt.Errorf("underlay: SourcePortBase %d leaves fewer than SourcePorts=%d ports below 65536", c.SourcePortBase, c.SourcePorts)
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		return fmt.Errorf("underlay: BatchSize is %d; it must be 1–%d (default %d)", c.BatchSize, maxBatchSize, DefaultBatchSize)
	}
	if c.SocketBuffer < 0 {
		return fmt.Errorf("underlay: SocketBuffer is %d; it must be 0 (kernel default) or a size in bytes", c.SocketBuffer)
	}
	return nil
}

// ListenPort is Listen with the default configuration, receiving on port:
// what a host agent needs unless it tunes batching or offload.
func ListenPort(addr netip.Addr, port uint16) (*UDPConn, error) {
	cfg := NewConfig()
	cfg.Port = port
	return Listen(addr, cfg)
}
