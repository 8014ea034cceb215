package services

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a resolver on loopback that answers a.test. A (TTL 30),
// nx.test. NXDOMAIN with a SOA of minimum 10, and fail.test. SERVFAIL,
// counting what it is asked.
func upstream(t *testing.T) (string, *atomic.Int64) {
	var asked atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetReply(req)
		switch req.Question[0].Name {
		case "a.test.":
			rr, _ := dns.NewRR("a.test. 30 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "nx.test.":
			m.Rcode = dns.RcodeNameError
			rr, _ := dns.NewRR("test. 300 IN SOA ns.test. admin.test. 1 60 60 60 10")
			m.Ns = append(m.Ns, rr)
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		_ = w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), &asked
}

func TestForwarderCachesForTTL(t *testing.T) {
	up, asked := upstream(t)
	f := newForwarder()
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	ask := func(name string) *dns.Msg {
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		return f.forward(req, up)
	}
	m := ask("a.test.")
	if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.1" || m.Answer[0].Header().Ttl != 30 || asked.Load() != 1 {
		t.Fatalf("first answer %v, upstream asked %d", m, asked.Load())
	}
	now = now.Add(12 * time.Second)
	if m := ask("A.TEST."); len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 18 || asked.Load() != 1 {
		t.Fatalf("within the TTL: %v, upstream asked %d (want the cache, TTL 18)", m, asked.Load())
	}
	now = now.Add(18 * time.Second)
	if ask("a.test."); asked.Load() != 2 {
		t.Fatalf("after the TTL the upstream was asked %d times, want 2", asked.Load())
	}
	// A negative answer lives for the SOA's minimum.
	if m := ask("nx.test."); m.Rcode != dns.RcodeNameError || asked.Load() != 3 {
		t.Fatalf("nx: %v", m)
	}
	now = now.Add(9 * time.Second)
	if m := ask("nx.test."); m.Rcode != dns.RcodeNameError || asked.Load() != 3 {
		t.Fatalf("nx within its 10 s: asked %d", asked.Load())
	}
	now = now.Add(time.Second)
	if ask("nx.test."); asked.Load() != 4 {
		t.Fatalf("nx after 10 s: asked %d, want 4", asked.Load())
	}
	// A failure is SERVFAIL, and not kept.
	if m := ask("fail.test."); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("fail: %v", m)
	}
	if ask("fail.test."); asked.Load() != 6 {
		t.Fatalf("a failure was cached: asked %d, want 6", asked.Load())
	}
}

// An upstream that does not answer is SERVFAIL after the wait.
func TestForwarderNoUpstream(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never read
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	req := new(dns.Msg)
	req.SetQuestion("a.test.", dns.TypeA)
	if m := newForwarder().forward(req, pc.LocalAddr().String()); m.Rcode != dns.RcodeServerFailure || m.Id != req.Id {
		t.Fatalf("%v", m)
	}
}
