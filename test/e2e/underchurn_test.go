package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// churnEnv turns the test binary into a churn generator:
// "SERVER CONFIG SUBNET HOST RATE SECONDS" runs and terminates instances
// in SUBNET on HOST, RATE mapping changes a second (each run and each
// terminate is one), for SECONDS, then prints how many it made.
const churnEnv = "OPENVPC_E2E_CHURN"

func churnMappings(spec string) {
	f := strings.Fields(spec)
	rate, _ := strconv.Atoi(f[4])
	secs, _ := strconv.Atoi(f[5])
	conn, err := (&cli.Options{Server: f[0], Config: f[1]}).Conn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	inst := openvpcv1connect.NewInstanceServiceClient(conn.HTTP, conn.URL)
	ctx := context.Background()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	changes, failed := 0, 0
	var running []string
	for deadline := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(deadline); <-tick.C {
		var err error
		if len(running) < 4 {
			var r *connect.Response[pb.RunInstanceResponse]
			if r, err = inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: f[2], Host: f[3]})); err == nil {
				running = append(running, r.Msg.Instance.Id)
			}
		} else {
			_, err = inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: running[0]}))
			running = running[1:]
		}
		if err != nil {
			failed++
			continue
		}
		changes++
	}
	for _, id := range running {
		_, _ = inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: id}))
	}
	fmt.Printf("changes %d failed %d\n", changes, failed)
}

// TestFastPathUnderChurn: iperf3 between two hosts with the fast path,
// quiet and then while instances in the same VPC come and go on a third
// host (each a mapping change, so a snapshot swap on every host and every
// fast-path entry stale): the flow keeps going, re-decided by the Go story
// after each swap, and the rates are logged.
func TestFastPathUnderChurn(t *testing.T) {
	prerequisites(t, "iperf3", "curl")
	ours := leakCheck(t)
	c := newCloudNIC(t, 3, 0, []string{"--nic", "veth", "--fastpath", "on", "--metrics", "{underlay}:" + strconv.Itoa(metricsPort)})
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	quiet := c.iperf("a", "b", b.PrivateIP)
	self, _ := os.Executable()
	const rate = 100
	gen := start(t, c.room.bridge.ns, []string{churnEnv + "=" + strings.Join([]string{c.url, c.config, "red-a", hostID(2), strconv.Itoa(rate), "9"}, " ")}, self)
	time.Sleep(2 * time.Second)
	before := c.metrics(0)
	busy := c.iperf("a", "b", b.PrivateIP)
	after := c.metrics(0)
	if code := gen.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("churn generator: exit %d\n%s", code, gen.out)
	}
	var changes, failed int
	fmt.Sscanf(strings.TrimSpace(gen.out.String()), "changes %d failed %d", &changes, &failed)
	d := func(e string) float64 { return fast(after, e) - fast(before, e) }
	t.Logf("iperf3 a → b with the fast path: %.2f Gbit/s quiet, %.2f Gbit/s under %d mapping changes in 9 s (%.0f/s asked %d/s, %d failed); during it host 1 revalidated %v entries, removed %v, found %v stale, installed %v",
		quiet, busy, changes, float64(changes)/9, rate, failed, d("revalidated"), d("invalidated"), d("stale"), d("installed"))
	if changes < 9*rate/4 {
		t.Errorf("the churn generator made %d changes in 9 s; want at least a quarter of %d/s to call it churn", changes, rate)
	}
	// Each swap re-decides the flow's entries (the change is elsewhere in
	// the VPC: they are kept).
	if d("revalidated") < float64(changes)/2 {
		t.Errorf("host 1 revalidated %v entries during %d snapshot swaps: the swaps did not reach the fast path", d("revalidated"), changes)
	}
}
