package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openvpc/openvpc/control/store"
)

// TestExternalEtcd points `openvpc server --etcd-endpoints` at a
// three-member etcd cluster, stops the cluster's leader, and keeps
// creating and reading through the CLI.
func TestExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd cluster")
	}
	cluster, err := store.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop)
	s := startServer(t, t.TempDir(), "--etcd-endpoints", strings.Join(cluster.Endpoints, ","))
	s.ok(t, "vpc", "create", "--name", "before", "--cidr", "10.0.0.0/16")
	if cluster.StopLeader() < 0 {
		t.Fatal("no leader to stop")
	}
	for i := range 3 {
		s.ok(t, "vpc", "create", "--name", fmt.Sprintf("after-%d", i), "--cidr", "10.1.0.0/16")
	}
	s.ok(t, "subnet", "create", "--vpc", "before", "--cidr", "10.0.1.0/24")
	out := s.ok(t, "vpc", "list")
	for _, name := range []string{"before", "after-0", "after-1", "after-2"} {
		if !strings.Contains(out, name) {
			t.Fatalf("vpc list after losing the leader lacks %s:\n%s", name, out)
		}
	}
	if out := s.ok(t, "vpc", "get", "before", "-o", "json"); !strings.Contains(out, `"name": "before"`) {
		t.Fatalf("get: %s", out)
	}
	// No etcd was embedded: the state is in the cluster.
	if _, err := os.Stat(filepath.Join(s.dataDir, "etcd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the server embedded an etcd despite --etcd-endpoints: %v", err)
	}
}
