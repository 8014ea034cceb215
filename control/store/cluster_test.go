package store

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestExternalClusterSurvivesMemberLoss points a store at a three-member
// etcd cluster, stops one member, and keeps creating and reading.
func TestExternalClusterSurvivesMemberLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd cluster")
	}
	dir := t.TempDir()
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := range 3 {
		m := member{
			name:   fmt.Sprintf("m%d", i),
			client: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	etcds := make([]*embed.Etcd, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() { // members wait for each other: start them together
			defer wg.Done()
			etcds[i], errs[i] = StartEmbedded(EmbedConfig{
				Dir: filepath.Join(dir, m.name), Name: m.name, ClientURL: m.client, PeerURL: m.peer,
				InitialCluster: strings.Join(initial, ","),
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	stopped := map[int]bool{}
	t.Cleanup(func() {
		for i, e := range etcds {
			if !stopped[i] {
				e.Close()
			}
		}
	})
	cfg := DefaultConfig()
	cfg.Endpoints = []string{ms[0].client, ms[1].client, ms[2].client}
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateVPC(c, "before", mustPrefix("10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	// Stop the leader: the hardest member to lose.
	leader := 0
	for i, e := range etcds {
		if e.Server.Leader() == e.Server.MemberID() {
			leader = i
		}
	}
	etcds[leader].Close()
	stopped[leader] = true
	for i := range 5 {
		if _, err := s.CreateVPC(c, fmt.Sprintf("after-%d", i), mustPrefix("10.1.0.0/16")); err != nil {
			t.Fatalf("create after losing a member: %v", err)
		}
	}
	vs, err := s.ListVPCs(c)
	if err != nil || len(vs) != 6 {
		t.Fatalf("list after losing a member = %d VPCs, %v", len(vs), err)
	}
	if _, err := s.GetVPC(c, "before"); err != nil {
		t.Fatal(err)
	}
}
