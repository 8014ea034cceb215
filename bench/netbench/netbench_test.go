package netbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/host/nic"
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

// TestPaths builds each path, runs iperf3 over it briefly and checks that
// Close leaves nothing behind: no namespace (the hosts', nor the
// instances' an openvpc agent made), no temporary directory, no process.
// It needs root and iperf3; OPENVPC_E2E=1 (CI) turns their absence into a
// failure.
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
	for _, tc := range []struct {
		path Path
		runs []Run
	}{
		{Veth, []Run{{Streams: 1, Duration: time.Second}, {Streams: 2, Duration: time.Second}}},
		{KernelVXLAN, []Run{{Streams: 1, Duration: time.Second}, {Streams: 2, Duration: time.Second}}},
		{OpenvpcTun, []Run{{Streams: 1, Duration: 2 * time.Second}}},
		{OpenvpcVethFast, []Run{{Streams: 1, Duration: 2 * time.Second}}},
	} {
		t.Run(tc.path.Name, func(t *testing.T) {
			if tc.path.Name == OpenvpcTun.Name && !nic.TUNAvailable() {
				prerequisite(t, "needs /dev/net/tun")
			}
			u, err := NewUnderlay()
			if err != nil {
				t.Fatal(err)
			}
			var e Endpoints
			t.Cleanup(func() {
				if err := u.Close(); err != nil {
					t.Error(err)
				}
				checkNothingLeft(t, u.A.NS, u.B.NS, e.ServerNS, e.ClientNS)
			})
			e, err = tc.path.Setup(u)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := u.Iperf3(ctx, e, tc.runs...)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.BitsPerSecond <= 0 {
					t.Errorf("%+v: nothing measured", r)
				}
				t.Logf("%d stream(s): %.2f Gbit/s, %d retransmits", tc.runs[i].Streams, r.Gbps(), r.Retransmits)
			}
		})
	}
}

// checkNothingLeft fails t if a namespace in names, a temporary directory
// of this process's or a child process survived Close.
func checkNothingLeft(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if n == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(netnsDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close", n)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-*", nsPrefix, os.Getpid())))
	for _, d := range dirs {
		t.Errorf("temporary directory %s still exists after Close", d)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so read after its ')'.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			t.Errorf("process %s still runs after Close: %s", filepath.Base(filepath.Dir(p)), b[:bytes.LastIndexByte(b, ')')+1])
		}
	}
}

func prerequisite(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatal(why + " (OPENVPC_E2E=1)")
	}
	t.Skip(why)
}
