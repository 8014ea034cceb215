package services

import (
	"context"
	"net"
	"reflect"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// DefaultTokenHopLimit is the IP TTL of the IMDSv2 token's response, AWS's
// default HttpPutResponseHopLimit: a program behind NAT in the instance (a
// container) sees the token's packets expire and cannot get one.
const DefaultTokenHopLimit = 1

// connKey keys the metadata request's TCP connection in its context.
type connKey struct{}

// withConn is the http.Server's ConnContext: handlers find their
// connection, whose TTL the token's response sets.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// setTTL sets the IP TTL of what the connection of ctx sends from now on;
// false if it is no netstack TCP connection.
func setTTL(ctx context.Context, ttl int) bool {
	c, _ := ctx.Value(connKey{}).(*gonet.TCPConn)
	if c == nil {
		return false
	}
	ep, ok := endpointOf(c)
	if !ok {
		return false
	}
	return ep.SetSockOptInt(tcpip.IPv4TTLOption, ttl) == nil
}

// endpointOf is the gVisor endpoint under a gonet connection. gonet keeps
// it unexported (and wireguard's netstack does not expose the stack), so
// it is read by reflection; a gonet without the field gives false, and the
// test of the token's TTL fails rather than the service.
func endpointOf(c *gonet.TCPConn) (tcpip.Endpoint, bool) {
	f := reflect.ValueOf(c).Elem().FieldByName("ep")
	if !f.IsValid() || !f.CanAddr() {
		return nil, false
	}
	ep, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(tcpip.Endpoint)
	return ep, ok && ep != nil
}
