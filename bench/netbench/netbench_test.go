package netbench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestParseIperf3(t *testing.T) {
	ok := []byte(`{"start":{},"end":{"sum_sent":{"bits_per_second":9.9e9,"retransmits":3},"sum_received":{"bits_per_second":9.8e9}}}`)
	r, err := parseIperf3(ok)
	if err != nil || r.BitsPerSecond != 9.8e9 || r.Retransmits != 3 {
		t.Errorf("parse a report: %+v, %v", r, err)
	}
	for name, out := range map[string]string{
		"iperf3 error": `{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`,
		"no JSON":      `iperf3: parameter error`,
		"no bytes":     `{"end":{"sum_received":{"bits_per_second":0}}}`,
	} {
		if _, err := parseIperf3([]byte(out)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPaths builds each baseline path, runs iperf3 over it for a second
// and checks that Close leaves no namespace behind. It needs root and
// iperf3; OPENVPC_E2E=1 (CI) turns their absence into a failure.
func TestPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs iperf3")
	}
	if os.Geteuid() != 0 {
		prerequisite(t, "needs root (network namespaces)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		prerequisite(t, ErrNoIperf3.Error())
	}
	for _, p := range []Path{Veth, KernelVXLAN} {
		t.Run(p.Name, func(t *testing.T) {
			u, err := NewUnderlay()
			if err != nil {
				t.Fatal(err)
			}
			names := []string{u.A.NS, u.B.NS}
			t.Cleanup(func() {
				if err := u.Close(); err != nil {
					t.Error(err)
				}
				for _, n := range names {
					if _, err := os.Stat(filepath.Join(netnsDir, n)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("namespace %s still exists after Close", n)
					}
				}
			})
			e, err := p.Setup(u)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := u.Iperf3(ctx, e, Run{Streams: 1, Duration: time.Second}, Run{Streams: 2, Duration: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.BitsPerSecond <= 0 {
					t.Errorf("%+v: nothing measured", r)
				}
				t.Logf("%.2f Gbit/s, %d retransmits", r.Gbps(), r.Retransmits)
			}
		})
	}
}

func prerequisite(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatal(why + " (OPENVPC_E2E=1)")
	}
	t.Skip(why)
}
