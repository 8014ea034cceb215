package testcloud_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkResolver is P12: one instance asks its VPC resolver (.2) for a
// name the host answers from its cache, one query at a time, next to the
// same query to dnsmasq (Debian) answering from its own cache over
// loopback, in the same run. ns/op is the latency of one query (so
// queries/s for one asker is 1e9 ÷ ns/op); p99-µs is the 99th
// percentile. The per-ENI limit is lifted for the measurement. dnsmasq missing: its half says why and is skipped (it
// fails under OPENVPC_E2E=1, where CI installs it).
func BenchmarkResolver(b *testing.B) {
	b.Run("openvpc", func(b *testing.B) {
		s := newSceneTB(b)
		web, _ := s.run(b, "red-a", s.b, s.red)
		_, clientNS := s.run(b, "red-a", s.a, s.red)
		// Lift AWS's 1024 packets/s per ENI (with it, one instance gets at
		// most 1024 answers a second, as on AWS): this measures the resolver.
		s.a.Plane.SetServiceLimit(1 << 30)
		name := "ip-" + strings.ReplaceAll(web.PrivateIp, ".", "-") + ".openvpc.compute.internal."
		c, err := clientNS.Net.DialContext(s.c.Ctx(), "udp", "10.0.0.2:53")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		queries(b, &dns.Conn{Conn: c}, name, web.PrivateIp)
	})
	b.Run("dnsmasq", func(b *testing.B) {
		bin, err := exec.LookPath("dnsmasq")
		if err != nil {
			if os.Getenv("OPENVPC_E2E") == "1" {
				b.Fatal("dnsmasq not on PATH and OPENVPC_E2E=1 (apt-get install dnsmasq-base)")
			}
			b.Skip("dnsmasq not on PATH (apt-get install dnsmasq-base)")
		}
		dir := b.TempDir()
		hosts := filepath.Join(dir, "hosts")
		if err := os.WriteFile(hosts, []byte("10.0.1.5 ip-10-0-1-5.openvpc.compute.internal\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		const addr = "127.0.9.53:5353"
		cmd := exec.Command(bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts="+hosts,
			"--listen-address=127.0.9.53", "--bind-interfaces", "--port=5353", "--pid-file=", "--user=root", "--cache-size=1000")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		var c net.Conn
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err = net.Dial("udp", addr); err == nil {
				m := new(dns.Msg).SetQuestion("ip-10-0-1-5.openvpc.compute.internal.", dns.TypeA)
				dc := &dns.Conn{Conn: c}
				_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
				if dc.WriteMsg(m) == nil {
					if r, err := dc.ReadMsg(); err == nil && len(r.Answer) == 1 {
						break
					}
				}
				c.Close()
			}
			if time.Now().After(deadline) {
				b.Fatalf("dnsmasq did not answer on %s", addr)
			}
		}
		defer c.Close()
		queries(b, &dns.Conn{Conn: c}, "ip-10-0-1-5.openvpc.compute.internal.", "10.0.1.5")
	})
}

// queries asks for name b.N times over c, one at a time, checking each
// answer is want, and reports the 99th percentile latency.
func queries(b *testing.B, c *dns.Conn, name, want string) {
	lat := make([]time.Duration, 0, 1<<16)
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for b.Loop() {
		if ctx.Err() != nil {
			b.Fatal(ctx.Err())
		}
		start := time.Now()
		_ = c.SetDeadline(start.Add(5 * time.Second))
		m.Id = dns.Id()
		if err := c.WriteMsg(m); err != nil {
			b.Fatal(err)
		}
		r, err := c.ReadMsg()
		if err != nil || len(r.Answer) != 1 || r.Id != m.Id {
			b.Fatalf("query %s: %v %v", name, r, err)
		}
		if a, ok := r.Answer[0].(*dns.A); !ok || a.A.String() != want {
			b.Fatalf("%s → %v, want %s", name, r.Answer[0], want)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
