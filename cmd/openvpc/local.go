package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

// localConfig says what cloud to run in this process.
type localConfig struct {
	Server   server.Config
	Hosts    int    // host-1 … on 127.0.1.1 …
	Edges    int    // edge-1 … on 127.0.1.251 …
	NIC      string // tun or netstack
	WirePort uint16
	Proxy    string // the internet's HTTP proxy address; "" for none
	Log      *slog.Logger
}

// localCloud is a whole cloud in this process: a server on embedded etcd,
// host agents with loopback underlay addresses, edges and a simulated
// internet. `openvpc up` and `openvpc demo` run one.
type localCloud struct {
	Server *server.Server
	Agents []*agent.Agent

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
	closers []func() // in reverse order of need
}

// startLocal starts the cloud; it runs until Close, or until a part fails
// (reported on Errs).
func startLocal(ctx context.Context, cfg localConfig) (*localCloud, error) {
	s, err := server.Start(ctx, cfg.Server)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &localCloud{Server: s, cancel: cancel, errs: make(chan error, cfg.Hosts+cfg.Edges)}
	c.closers = append(c.closers, func() { s.Close() })
	fail := func(err error) (*localCloud, error) {
		c.Close()
		return nil, err
	}
	for i := 1; i <= cfg.Hosts; i++ {
		addr := netip.AddrFrom4([4]byte{127, 0, 1, byte(i)})
		wire, err := underlay.ListenPort(addr, cfg.WirePort)
		if err != nil {
			return fail(fmt.Errorf("underlay of host-%d on %s:%d: %w (is another openvpc up running? try --wire-port)", i, addr, cfg.WirePort, err))
		}
		c.closers = append(c.closers, func() { wire.Close() })
		id := fmt.Sprintf("host-%d", i)
		var backend nic.Backend = nic.NetstackBackend{}
		if cfg.NIC == "tun" {
			// Kept with the cloud's state: a restart on the same data dir
			// adopts or removes what a crash left.
			b, err := nic.NewTUNBackend(filepath.Join(cfg.Server.Store.DataDir, "nics", id))
			if err != nil {
				return fail(err)
			}
			c.closers = append(c.closers, func() { b.Close() })
			backend = b
		}
		// In the server's own process: credentials without a join token.
		creds, err := s.Trust.IssueAgent(ctx, id, pki.RoleHost, addr)
		if err != nil {
			return fail(err)
		}
		a, err := agent.New(agent.Config{
			Node: node.Config{Server: s.URL(), HostID: id, Creds: creds, Logger: cfg.Log, Underlay: addr, API: "127.0.0.1:0"},
			Wire: wire, WirePort: cfg.WirePort, NIC: backend,
		})
		if err != nil {
			return fail(err)
		}
		if err := s.Register(a.Collector()); err != nil {
			return fail(err)
		}
		c.Agents = append(c.Agents, a)
		c.run(ctx, a.Run)
	}
	inet, err := startInternet(ctx, s, cfg.Log, cfg.Edges, cfg.WirePort, cfg.Proxy, &c.wg, c.errs)
	if err != nil {
		return fail(err)
	}
	c.closers = append(c.closers, inet.close)
	return c, nil
}

func (c *localCloud) run(ctx context.Context, fn func(context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.errs <- err
		}
	}()
}

// Errs reports a part of the cloud that failed.
func (c *localCloud) Errs() <-chan error { return c.errs }

// Close stops every part and waits for them.
func (c *localCloud) Close() {
	c.cancel()
	c.wg.Wait()
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}
