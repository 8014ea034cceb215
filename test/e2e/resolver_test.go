package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serveDNSEnv, when set, turns the test binary into a tiny DNS server on
// that address (UDP): the "internet's" resolver the VPC resolvers forward
// to, in a namespace the test made. It knows one name.
const serveDNSEnv = "OPENVPC_E2E_SERVE_DNS"

const (
	externalName = "www.example.test."
	externalAddr = "203.0.113.10"
)

func serveDNS(addr string) {
	dns.HandleFunc(".", func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg).SetReply(req)
		if q := req.Question; len(q) == 1 && strings.EqualFold(q[0].Name, externalName) && q[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(externalAddr)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	if err := (&dns.Server{Addr: addr, Net: "udp"}).ListenAndServe(); err != nil {
		os.Exit(1)
	}
}

// TestResolverUpstream: a name the VPC does not own is forwarded to the
// server's --dns-upstream — here a resolver in the test's own namespace —
// and answered inside a TUN instance as its programs ask.
func TestResolverUpstream(t *testing.T) {
	prerequisites(t, "dig", "getent")
	ours := leakCheck(t)
	upstream := underlayAddr(254).String() + ":5353"
	c := newCloudWith(t, 1, 0, "--dns-upstream", upstream)
	ours.dirs = c.dirs
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start(t, c.room.bridge.ns, []string{serveDNSEnv + "=" + upstream}, self)
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	ours.instances = []string{a.ID}
	c.eventually(externalName+" through the upstream", 15*time.Second, func() bool {
		out, code := c.exec("a", 10*time.Second, "dig", "+time=1", "+tries=1", "+short", externalName)
		return code == 0 && strings.TrimSpace(out) == externalAddr
	})
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", strings.TrimSuffix(externalName, ".")); code != 0 || !strings.HasPrefix(out, externalAddr+" ") {
		t.Errorf("getent hosts %s: exit %d\n%s", externalName, code, out)
	}
	if out, _ := c.exec("a", 10*time.Second, "dig", "nothing.example.test"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("a name the upstream does not know: want NXDOMAIN\n%s", out)
	}
}

// TestResolverPeering: an instance resolves the names of an actively
// peered VPC's instances only while the peering allows remote DNS, as
// AWS's peering option (off by default).
func TestResolverPeering(t *testing.T) {
	prerequisites(t, "dig")
	ours := leakCheck(t)
	c := newCloud(t, 2)
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	c.vpc("blue", "10.1.0.0/16", "10.1.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("blue-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	pcx := okJSON[struct {
		ID string `json:"id"`
	}](c, "peering", "create", "--vpc", "red", "--peer-vpc", "blue")
	c.ok("peering", "accept", pcx.ID)
	bName := "ip-" + strings.ReplaceAll(b.PrivateIP, ".", "-") + ".openvpc.compute.internal"
	if out, _ := c.exec("a", 10*time.Second, "dig", "+time=2", "+tries=1", bName); !strings.Contains(out, "status: NXDOMAIN") {
		t.Fatalf("a resolved blue's %s with remote DNS off:\n%s", bName, out)
	}
	c.ok("peering", "modify", pcx.ID, "--allow-remote-dns", "true")
	c.eventually("blue's names to resolve in red", 10*time.Second, func() bool {
		out, code := c.exec("a", 10*time.Second, "dig", "+time=1", "+tries=1", "+short", bName)
		return code == 0 && strings.TrimSpace(out) == b.PrivateIP
	})
	if out, code := c.exec("a", 10*time.Second, "dig", "+short", "b.blue.internal"); code != 0 || strings.TrimSpace(out) != b.PrivateIP {
		t.Errorf("b.blue.internal from red: exit %d %q", code, out)
	}
	c.ok("peering", "modify", pcx.ID, "--allow-remote-dns", "false")
	c.eventually("blue's names to stop resolving in red", 10*time.Second, func() bool {
		out, _ := c.exec("a", 10*time.Second, "dig", "+time=1", "+tries=1", bName)
		return strings.Contains(out, "status: NXDOMAIN")
	})
}

// TestPrivateZone: a record of a private hosted zone associated with the
// VPC is answered to dig and getent in a TUN instance as soon as the API
// returns with --wait; deleted, the name is NXDOMAIN.
func TestPrivateZone(t *testing.T) {
	prerequisites(t, "dig", "getent")
	ours := leakCheck(t)
	c := newCloud(t, 2)
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	c.ok("zone", "create", "--name", "corp.example", "--vpc", "red", "--wait")
	c.ok("zone", "record", "add", "corp.example", "--name", "db", "--type", "A", "--value", b.PrivateIP, "--ttl", "30", "--wait")
	c.ok("zone", "record", "add", "corp.example", "--name", "www", "--type", "CNAME", "--value", "db.corp.example", "--wait")
	if out, code := c.exec("a", 10*time.Second, "dig", "+short", "db.corp.example"); code != 0 || strings.TrimSpace(out) != b.PrivateIP {
		t.Fatalf("dig db.corp.example right after --wait: exit %d %q, want %s", code, out, b.PrivateIP)
	}
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", "www.corp.example"); code != 0 || !strings.HasPrefix(out, b.PrivateIP+" ") {
		t.Errorf("getent hosts www.corp.example (a CNAME): exit %d\n%s", code, out)
	}
	c.ok("zone", "record", "delete", "corp.example", "--name", "db", "--type", "A", "--wait")
	if out, _ := c.exec("a", 10*time.Second, "dig", "db.corp.example"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("a deleted record still answers:\n%s", out)
	}
}
