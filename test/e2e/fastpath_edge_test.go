package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFastPathEdgeFlows: with the kernel fast path on, a TCP flow from an
// instance to the internet — through an edge, not to another host — is
// not replayed by the kernel (toward an edge the Go story alone forwards)
// and works; and the agent does not pay a map deletion per packet of a
// flow the cache may not replay: it forgets each such flow once.
func TestFastPathEdgeFlows(t *testing.T) {
	prerequisites(t, "iperf3")
	ours := leakCheck(t)
	c := newInternetCloudNIC(t, []string{"--nic", "veth", "--fastpath", "on", "--metrics", "{underlay}:" + strconv.Itoa(metricsPort)})
	ours.dirs = c.dirs
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	ours.instances = []string{a.ID}
	c.ok("igw", "create", "--name", "red-igw")
	c.ok("igw", "attach", "red-igw", "--vpc", "red")
	c.ok("route", "create", "--route-table", red.MainRouteTableID, "--dest", "0.0.0.0/0", "--target", "red-igw")
	c.ok("eip", "allocate", "--name", "a-ip")
	c.ok("eip", "associate", "a-ip", "--instance", "a")

	srv := start(t, c.inet.ns, nil, "iperf3", "-s", "-1", "-B", webIP.String(), "-p", "5201")
	m0 := c.metrics(0)
	var out string
	var code int
	c.eventually("iperf3 to the internet to start", 10*time.Second, func() bool {
		out, code = c.exec("a", 30*time.Second, "iperf3", "-c", webIP.String(), "-p", "5201", "-t", "3", "-J")
		return !strings.Contains(out, "Connection refused")
	})
	var r struct {
		End struct {
			SumReceived struct {
				Bytes float64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.End.SumReceived.Bytes < 1e6 {
		t.Fatalf("iperf3 from a to the internet: exit %d, %v, %v bytes\n%s\n%s", code, err, r.End.SumReceived.Bytes, out, c.edgeCounters())
	}
	srv.wait(t, 10*time.Second)
	m1 := c.metrics(0)
	fwd := m1[`openvpc_host_packets_total{verdict="forwarded"}`] - m0[`openvpc_host_packets_total{verdict="forwarded"}`]
	forgotten := fast(m1, "forgotten") - fast(m0, "forgotten")
	t.Logf("iperf3 a → the internet: %.0f MB in 3 s; host 1 forwarded %v packets (super-packets count once), %v of them in the kernel, and forgot %v flows",
		r.End.SumReceived.Bytes/1e6, fwd, fast(m1, "egress_forwarded")-fast(m0, "egress_forwarded"), forgotten)
	if n := fast(m1, "egress_forwarded") - fast(m0, "egress_forwarded"); n > 0 {
		t.Errorf("the kernel replayed %v packets toward an edge", n)
	}
	if fwd < 1000 || forgotten > 10 {
		t.Errorf("host 1 forwarded %v packets of one flow and deleted its map entry %v times: want once per flow, not per packet", fwd, forgotten)
	}
}
