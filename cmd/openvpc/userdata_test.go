package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestUserDataCLI: `instance run --user-data` takes @FILE, FILE or the
// text itself, refuses more than 16 KiB (the server does too: testcloud), and the
// Mapping Service gives the data to the instance's host alone.
func TestUserDataCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.registerHost(t, "host-b", "127.0.1.2")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	dir := t.TempDir()
	file := filepath.Join(dir, "cloud-init.yaml")
	script := "#cloud-config\nruncmd:\n  - echo hello\n"
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	type userJ struct {
		ID       string `json:"id"`
		UserData []byte `json:"userData"`
	}
	for _, tc := range []struct{ arg, want string }{{"@" + file, script}, {file, script}, {"echo hi", "echo hi"}} {
		got := okJSON[userJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--user-data", tc.arg)
		if string(got.UserData) != tc.want {
			t.Errorf("--user-data %s: stored %q, want %q", tc.arg, got.UserData, tc.want)
		}
	}
	s.ok(t, "instance", "run", "--subnet", "red-a", "--host", "host-b") // so host-b holds red's mappings
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 16<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	s.fail(t, "", []string{"16385 bytes", "16 KiB"}, "instance", "run", "--subnet", "red-a", "--user-data", "@"+big)
	s.fail(t, "", []string{"--user-data", "no such file"}, "instance", "run", "--subnet", "red-a", "--user-data", "@"+filepath.Join(dir, "missing"))

	red := okJSON[struct {
		Vni uint32 `json:"vni"`
	}](t, s, "vpc", "get", "red")
	for host, want := range map[string]int{"host-a": 3, "host-b": 0} {
		r, err := s.joinHost(t, host, "").GetVpcMappings(context.Background(), connect.NewRequest(&pb.GetVpcMappingsRequest{HostId: host, Vni: red.Vni}))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		n := 0
		for _, m := range r.Msg.Mappings {
			if len(m.UserData) > 0 {
				n++
				if m.HostId != host || !strings.Contains(script+"echo hi", string(m.UserData)) {
					t.Errorf("%s got user data %q of %s's instance", host, m.UserData, m.HostId)
				}
			}
		}
		if n != want || len(r.Msg.Mappings) != 4 {
			t.Errorf("%s: %d of %d mappings with user data, want %d of 4", host, n, len(r.Msg.Mappings), want)
		}
	}
}
