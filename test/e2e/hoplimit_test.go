package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTokenHopLimit: in a TUN instance, tshark sees the IMDSv2 token's
// response arrive with IP TTL 1 (AWS's hop limit: a container behind NAT
// in the instance would not get it), and another metadata response with
// the default TTL. Each request is on its own local port, so the packets
// of each are told apart.
func TestTokenHopLimit(t *testing.T) {
	prerequisites(t, "curl", "tshark")
	ours := leakCheck(t)
	c := newCloud(t, 1)
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	ours.instances = []string{a.ID}

	capture := c.background("a", nil, "tshark", "-i", "any", "-n", "-l", "-a", "duration:10",
		"-f", "tcp and src host 169.254.169.254", "-T", "fields", "-e", "tcp.dstport", "-e", "ip.ttl", "-e", "tcp.len")
	time.Sleep(3 * time.Second) // tshark is capturing once it has started
	tok, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "--local-port", "40001", "-X", "PUT",
		"-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", "http://169.254.169.254/latest/api/token")
	if code != 0 || tok == "" {
		t.Fatalf("IMDSv2 token: exit %d %q", code, tok)
	}
	if out, code := c.exec("a", 10*time.Second, "curl", "-sf", "-m", "5", "--local-port", "40002",
		"-H", "X-aws-ec2-metadata-token: "+tok, "http://169.254.169.254/latest/meta-data/instance-id"); code != 0 || out != a.ID {
		t.Fatalf("instance-id: exit %d %q", code, out)
	}
	capture.wait(t, 20*time.Second)
	ttls := map[string][]int{}
	for _, line := range strings.Split(capture.out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] == "0" {
			continue // not a packet line, or no payload
		}
		ttl, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		ttls[f[0]] = append(ttls[f[0]], ttl)
	}
	if len(ttls["40001"]) == 0 || len(ttls["40002"]) == 0 {
		t.Fatalf("tshark saw no responses on both ports:\n%s", capture.out)
	}
	for _, ttl := range ttls["40001"] {
		if ttl != 1 {
			t.Errorf("the token's response has TTL %d, want 1 (%v)", ttl, ttls["40001"])
		}
	}
	for _, ttl := range ttls["40002"] {
		if ttl <= 1 {
			t.Errorf("instance-id's response has TTL %d, want the default (%v)", ttl, ttls["40002"])
		}
	}
}
