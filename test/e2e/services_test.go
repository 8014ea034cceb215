package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/host/nic"
)

// TestHostServices runs real programs in TUN instances against what their
// hosts answer: getent through the resolv.conf the namespace got (the VPC
// resolver at .2), a peer's private name and instance name on another host and its PTR, and
// dig, and curl of the metadata service, IMDSv1 and IMDSv2.
func TestHostServices(t *testing.T) {
	prerequisites(t, "curl", "getent", "dig")
	ours := leakCheck(t)
	c := newCloud(t, 2)
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}

	conf, err := os.ReadFile(filepath.Join(nic.EtcNetnsDir, nic.NamespaceName(a.ID), "resolv.conf"))
	if err != nil || !strings.Contains(string(conf), "nameserver 10.0.0.2") {
		t.Fatalf("instance a's resolv.conf: %q, %v", conf, err)
	}
	if out, _ := c.exec("a", 5*time.Second, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 10.0.0.2") {
		t.Errorf("openvpc exec does not show the instance its resolv.conf:\n%s", out)
	}
	bName := "ip-" + strings.ReplaceAll(b.PrivateIP, ".", "-") + ".openvpc.compute.internal"
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", bName); code != 0 || !strings.HasPrefix(out, b.PrivateIP+" ") {
		t.Errorf("getent hosts %s in a: exit %d\n%s", bName, code, out)
	}
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", "b.red.internal"); code != 0 || !strings.HasPrefix(out, b.PrivateIP+" ") {
		t.Errorf("getent hosts b.red.internal in a: exit %d\n%s", code, out)
	}
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", b.PrivateIP); code != 0 || !strings.Contains(out, bName) {
		t.Errorf("getent hosts %s (PTR) in a: exit %d\n%s", b.PrivateIP, code, out)
	}
	// dig over TCP, at the link-local address, and the PTR with its TTL.
	if out, code := c.exec("a", 10*time.Second, "dig", "+tcp", "+short", "@169.254.169.253", bName); code != 0 || strings.TrimSpace(out) != b.PrivateIP {
		t.Errorf("dig +tcp @169.254.169.253 %s: exit %d\n%s", bName, code, out)
	}
	if out, code := c.exec("a", 10*time.Second, "dig", "+noall", "+answer", "-x", b.PrivateIP); code != 0 || !strings.Contains(out, "60\tIN\tPTR\t"+bName+".") {
		t.Errorf("dig -x %s: exit %d\n%s", b.PrivateIP, code, out)
	}
	if out, _ := c.exec("a", 10*time.Second, "dig", "example.com"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("dig example.com: want NXDOMAIN (no forwarding yet)\n%s", out)
	}
	// DNS support off: dig gets no answer at all; on again: it does.
	c.ok("vpc", "modify", "red", "--enable-dns-support=false")
	c.eventually("the resolver to stop answering", 10*time.Second, func() bool {
		_, code := c.exec("a", 10*time.Second, "dig", "+time=1", "+tries=1", "+short", bName)
		return code != 0
	})
	c.ok("vpc", "modify", "red", "--enable-dns-support=true")
	c.eventually("the resolver to answer again", 10*time.Second, func() bool {
		out, code := c.exec("a", 10*time.Second, "dig", "+time=1", "+tries=1", "+short", bName)
		return code == 0 && strings.TrimSpace(out) == b.PrivateIP
	})
	if out, code := c.exec("a", 10*time.Second, "getent", "hosts", "ip-10-0-1-250.openvpc.compute.internal"); code == 0 {
		t.Errorf("a name of no instance resolved:\n%s", out)
	}

	if out, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "http://169.254.169.254/latest/meta-data/instance-id"); code != 0 || out != a.ID {
		t.Errorf("IMDSv1 instance-id in a: exit %d %q, want %q", code, out, a.ID)
	}
	tok, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", "http://169.254.169.254/latest/api/token")
	if code != 0 || tok == "" {
		t.Fatalf("IMDSv2 token in a: exit %d %q", code, tok)
	}
	if out, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "-H", "X-aws-ec2-metadata-token: "+tok, "http://169.254.169.254/latest/meta-data/local-ipv4"); code != 0 || out != a.PrivateIP {
		t.Errorf("IMDSv2 local-ipv4 in a: exit %d %q, want %q", code, out, a.PrivateIP)
	}
	// Refuse IMDSv1 for a: curl without a token fails, with one it works.
	c.ok("instance", "modify", "a", "--imds-v1", "required-token")
	c.eventually("IMDSv1 refused for a", 10*time.Second, func() bool {
		_, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "http://169.254.169.254/latest/meta-data/instance-id")
		return code != 0
	})
	if out, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "-H", "X-aws-ec2-metadata-token: "+tok, "http://169.254.169.254/latest/meta-data/instance-id"); code != 0 || out != a.ID {
		t.Errorf("IMDSv2 under required-token: exit %d %q", code, out)
	}
}
