package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSecurityGroups is the AWS matrix on real programs: TUN instances on
// two host processes, curl and ping inside them, groups and ACLs made with
// the CLI as a user would.
func TestSecurityGroups(t *testing.T) {
	prerequisites(t, "ping", "curl")
	ours := leakCheck(t)
	c := newCloud(t, 2)
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	c.ok("subnet", "create", "--vpc", "red", "--cidr", "10.0.2.0/24", "--name", "red-b")
	c.ok("sg", "create", "--vpc", "red", "--name", "web")
	c.ok("sg", "authorize", "web", "--ingress", "--proto", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	c.ok("sg", "authorize", "web", "--ingress", "--proto", "icmp", "--icmp-type", "8", "--cidr", "0.0.0.0/0")
	c.ok("sg", "create", "--vpc", "red", "--name", "db")
	c.ok("sg", "authorize", "db", "--ingress", "--proto", "tcp", "--port", "8080", "--source-group", "web")

	a := c.instance("red-a", "a", 0) // the VPC's default group only
	b := okJSON[instanceJ](c, "instance", "run", "--subnet", "red-a", "--name", "b", "--host", hostID(1), "--security-group", "web", "--wait")
	d := okJSON[instanceJ](c, "instance", "run", "--subnet", "red-a", "--name", "d", "--host", hostID(0), "--security-group", "db", "--wait")
	e := okJSON[instanceJ](c, "instance", "run", "--subnet", "red-b", "--name", "e", "--host", hostID(1), "--security-group", "web", "--wait")
	ours.instances = []string{a.ID, b.ID, d.ID, e.ID}
	for _, s := range []struct{ name, ip string }{{"b", b.PrivateIP}, {"d", d.PrivateIP}, {"e", e.PrivateIP}} {
		c.httpServer(s.name, s.ip)
	}

	t.Run("a rule lets tcp 8080 in, and the reply out with no rule for it", func(t *testing.T) {
		c.in(t).mustCurl("a", b.PrivateIP, a.PrivateIP)
	})
	t.Run("a port no rule names: the SYN is dropped, the client times out", func(t *testing.T) {
		out, code := c.in(t).exec("a", 15*time.Second, "curl", "-sS", "--max-time", "3", "http://"+b.PrivateIP+":22/")
		if code != 28 { // curl: operation timed out (7 would be a refused connection)
			t.Fatalf("curl to port 22: exit %d, want 28 (timed out):\n%s", code, out)
		}
	})
	t.Run("icmp echo allowed by type, one way", func(t *testing.T) {
		c := c.in(t)
		c.mustPing("a", b.PrivateIP)
		if out, code := c.exec("b", 10*time.Second, "ping", "-c", "1", "-W", "1", a.PrivateIP); code == 0 {
			t.Fatalf("b pinged a, whose default group admits only its own members:\n%s", out)
		}
	})
	t.Run("a source-group rule follows membership", func(t *testing.T) {
		c := c.in(t)
		c.mustCurl("b", d.PrivateIP, b.PrivateIP)
		if _, code := c.exec("a", 15*time.Second, "curl", "-sS", "--max-time", "3", "http://"+d.PrivateIP+":8080/"); code != 28 {
			t.Fatalf("a, not in web, reached db: exit %d", code)
		}
		c.ok("instance", "modify", "a", "--security-group", "red/default,web")
		c.eventually("a in web to reach db", 10*time.Second, func() bool {
			_, code := c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+d.PrivateIP+":8080/")
			return code == 0
		})
		c.ok("instance", "modify", "a", "--security-group", "red/default")
		c.eventually("a, out of web, to lose db", 10*time.Second, func() bool {
			_, code := c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+d.PrivateIP+":8080/")
			return code == 28
		})
	})
	t.Run("an ACL without the ephemeral ports breaks return traffic, as on AWS", func(t *testing.T) {
		c := c.in(t)
		c.mustCurl("a", e.PrivateIP, a.PrivateIP)
		c.ok("acl", "create", "--vpc", "red", "--name", "strict")
		c.ok("acl", "entry", "add", "strict", "--rule-number", "100", "--allow", "--proto", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
		c.ok("acl", "associate", "strict", "--subnet", "red-b")
		c.eventually("the strict ACL to drop e's replies", 10*time.Second, func() bool {
			_, code := c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+e.PrivateIP+":8080/")
			return code == 28
		})
		c.ok("acl", "entry", "add", "strict", "--rule-number", "100", "--allow", "--egress", "--proto", "tcp", "--port", "1024-65535", "--cidr", "0.0.0.0/0")
		c.eventually("the ephemeral ports to let e's replies out", 10*time.Second, func() bool {
			_, code := c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+e.PrivateIP+":8080/")
			return code == 0
		})
	})
	t.Run("revoking a rule keeps a tracked connection and refuses new ones", func(t *testing.T) {
		c := c.in(t)
		// A download slow enough to be in flight when the rule goes.
		dl := c.background("a", nil, "curl", "-sS", "-o", "/dev/null", "--limit-rate", "4M", "--max-time", "60",
			"-w", "%{size_download}", "http://"+b.PrivateIP+":8080/big")
		time.Sleep(time.Second)
		c.ok("sg", "revoke", "web", "--ingress", "--proto", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
		c.eventually("new connections to be refused", 10*time.Second, func() bool {
			_, code := c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+b.PrivateIP+":8080/")
			return code == 28
		})
		select {
		case <-dl.done:
		case <-time.After(60 * time.Second):
			t.Fatal("the download did not finish")
		}
		if out := dl.out.String(); !strings.Contains(out, fmt.Sprint(bigSize)) {
			t.Fatalf("the tracked download was cut: %q", out)
		}
	})
}
