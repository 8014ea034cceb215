package localcloud_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/localcloud"
)

// TestInternetDNS: a cloud with an internet runs the internet's resolver
// on loopback as the server's DNS upstream, so an instance resolves
// www.example.test to the internet's web server through its VPC
// resolver (.2), and a name the internet does not have is NXDOMAIN. No
// query leaves loopback.
func TestInternetDNS(t *testing.T) {
	cfg := config(t, 1, 1)
	cfg.AnyUnderlay = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcloud.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	up := c.Config().Server.DNSUpstream
	if ap, err := netip.ParseAddrPort(up); err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("the server's DNS upstream is %q, want the internet's resolver on loopback", up)
	}
	// The internet's resolver itself, over UDP and TCP.
	for _, network := range []string{"udp", "tcp"} {
		q := new(dns.Msg)
		q.SetQuestion("WWW.example.test.", dns.TypeA)
		m, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(q, up)
		if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != localcloud.WebAddr.String() {
			t.Fatalf("%s: %v, %v", network, m, err)
		}
	}

	st := c.Server(0).Store
	vpc, err := st.CreateVPC(ctx, "red", netip.MustParsePrefix("10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSubnet(ctx, "red", netip.MustParsePrefix("10.0.1.0/24"), "red-a", ""); err != nil {
		t.Fatal(err)
	}
	inst, err := st.RunInstance(ctx, store.RunSpec{Subnet: "red-a", Host: "host-1"})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(inst.PrivateIp)
	var r *net.Resolver
	for deadline := time.Now().Add(10 * time.Second); r == nil; time.Sleep(10 * time.Millisecond) {
		if ns, ok := c.Hosts[0].Netstack(vpc.Vni, ip); ok {
			r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return ns.Net.DialContext(ctx, network, "10.0.0.2:53")
			}}
		} else if time.Now().After(deadline) {
			t.Fatal("the instance has no NIC on host-1")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c2, cancel2 := context.WithTimeout(ctx, time.Second)
		addrs, err := r.LookupHost(c2, "www.example.test")
		cancel2()
		if err == nil && len(addrs) == 1 && addrs[0] == localcloud.WebAddr.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("www.example.test from the instance: %v, %v; want %s", addrs, err, localcloud.WebAddr)
		}
	}
	_, err = r.LookupHost(ctx, "nothing.example.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("nothing.example.test: %v, want not found", err)
	}
}
