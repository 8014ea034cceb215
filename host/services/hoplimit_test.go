package services

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// The IMDSv2 token's response reaches the instance with IP TTL 1; the
// other metadata responses with the default TTL. The instance is a
// netstack of its own, wired to the services stack by a pump that reads
// every packet's TTL as the instance receives it.
func TestTokenHopLimit(t *testing.T) {
	inst := netip.MustParseAddr("10.0.1.4")
	s, err := New(Config{
		VNI: 100, CIDR: netip.MustParsePrefix("10.0.0.0/16"), Tables: tables.New(1),
		Identity: func(ip netip.Addr) (Identity, bool) {
			return Identity{InstanceID: "i-1", IP: inst}, ip == inst
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{inst}, nil, dataplane.DefaultMTU)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	var mu sync.Mutex
	ttls := map[uint16][]byte{} // the instance's local port → TTLs of TCP payload packets to it
	go func() {                 // instance → services
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			n, err := dev.Read(bufs, sizes, packet.Headroom)
			if err != nil {
				return
			}
			for i := range n {
				b := make([]byte, packet.Headroom+sizes[i])
				copy(b[packet.Headroom:], bufs[i][packet.Headroom:packet.Headroom+sizes[i]])
				if _, err := s.dev.Write([][]byte{b}, packet.Headroom); err != nil {
					return
				}
			}
		}
	}()
	go func() { // services → instance, noting TTLs
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			n, err := s.Read(bufs, sizes)
			if err != nil {
				return
			}
			for i := range n {
				p := bufs[i][packet.Headroom : packet.Headroom+sizes[i]]
				if len(p) >= 40 && p[0]>>4 == 4 && p[9] == 6 {
					ihl := int(p[0]&0xf) * 4
					tcp := p[ihl:]
					if len(tcp) >= 20 && len(tcp) > int(tcp[12]>>4)*4 { // carries data
						mu.Lock()
						port := uint16(tcp[2])<<8 | uint16(tcp[3])
						ttls[port] = append(ttls[port], p[8])
						mu.Unlock()
					}
				}
				b := make([]byte, sizes[i])
				copy(b, p)
				if _, err := dev.Write([][]byte{b}, 0); err != nil {
					return
				}
			}
		}
	}()

	// Each request on its own connection, so its packets are told apart by port.
	do := func(method, path string, h map[string]string) (string, uint16) {
		t.Helper()
		var port uint16
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				c, err := tnet.DialContextTCPAddrPort(ctx, netip.MustParseAddrPort(addr))
				if err == nil {
					port = netip.MustParseAddrPort(c.LocalAddr().String()).Port()
				}
				return c, err
			},
		}}
		req, _ := http.NewRequest(method, "http://169.254.169.254"+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		return string(b), port
	}
	tok, tokPort := do("PUT", "/latest/api/token", map[string]string{headerTTL: "60"})
	id, idPort := do("GET", "/latest/meta-data/instance-id", map[string]string{headerToken: strings.TrimSpace(tok)})
	if id != "i-1" {
		t.Fatalf("instance-id %q", id)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ttls[tokPort]) == 0 || len(ttls[idPort]) == 0 {
		t.Fatalf("no data packets seen: %v", ttls)
	}
	for _, ttl := range ttls[tokPort] {
		if ttl != 1 {
			t.Errorf("token response TTL %d, want 1 (all: %v)", ttl, ttls[tokPort])
		}
	}
	for _, ttl := range ttls[idPort] {
		if ttl <= 1 {
			t.Errorf("metadata response TTL %d, want the default (all: %v)", ttl, ttls[idPort])
		}
	}
}
