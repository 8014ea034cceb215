package store

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"

	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is a multi-member etcd cluster running in this process.
type Cluster struct {
	Endpoints []string
	members   []*embed.Etcd
	stopped   []bool
}

// StartCluster starts an n-member etcd cluster on loopback, in dir.
func StartCluster(dir string, n int) (*Cluster, error) {
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := range n {
		m := member{name: fmt.Sprintf("m%d", i), client: "http://" + freeAddr(), peer: "http://" + freeAddr()}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	c := &Cluster{members: make([]*embed.Etcd, n), stopped: make([]bool, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range ms {
		c.Endpoints = append(c.Endpoints, m.client)
		wg.Add(1)
		go func() { // members wait for each other: start them together
			defer wg.Done()
			c.members[i], errs[i] = StartEmbedded(EmbedConfig{
				Dir: filepath.Join(dir, m.name), Name: m.name, ClientURL: m.client, PeerURL: m.peer,
				InitialCluster: strings.Join(initial, ","),
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// StopLeader stops the member that leads the cluster and returns its index.
func (c *Cluster) StopLeader() int {
	for i, e := range c.members {
		if !c.stopped[i] && e != nil && e.Server.Leader() == e.Server.MemberID() {
			e.Close()
			c.stopped[i] = true
			return i
		}
	}
	return -1
}

// Stop stops every member still running.
func (c *Cluster) Stop() {
	for i, e := range c.members {
		if e != nil && !c.stopped[i] {
			e.Close()
			c.stopped[i] = true
		}
	}
}
