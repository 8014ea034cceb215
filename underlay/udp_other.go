//go:build !linux

package underlay

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// UDPConn is a Conn over real UDP sockets; it exists on Linux only (recvmmsg, sendmmsg).
type UDPConn struct{}

var errUnsupported = fmt.Errorf("underlay: UDP sockets on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Listen fails: the underlay sockets need Linux. Use MemNet in tests.
func Listen(addr netip.Addr, cfg Config) (*UDPConn, error) { return nil, errUnsupported }

func (c *UDPConn) ReadBatch(ds []Datagram) (int, error)  { return 0, errUnsupported }
func (c *UDPConn) WriteBatch(ds []Datagram) (int, error) { return 0, errUnsupported }
func (c *UDPConn) LocalAddr() netip.Addr                 { return netip.Addr{} }
func (c *UDPConn) LocalAddrPort() netip.AddrPort         { return netip.AddrPort{} }
func (c *UDPConn) SourcePort(srcPort uint16) uint16      { return 0 }
func (c *UDPConn) SourcePorts() []uint16                 { return nil }
func (c *UDPConn) Offload() (gso, gro bool)              { return false, false }
func (c *UDPConn) BatchSize() int                        { return 0 }
func (c *UDPConn) Stats() Stats                          { return Stats{} }
func (c *UDPConn) Close() error                          { return errUnsupported }
