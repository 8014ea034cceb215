package dx

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/edge/bgp"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/tables"
)

// ControllerConfig is an edge's Direct Connect: its ports, and how it
// learns its VIFs from the server and reports their sessions.
type ControllerConfig struct {
	// Client calls the server as this edge (or Bind gives it).
	Client openvpcv1connect.DirectConnectServiceClient
	// EdgeID is this edge's id.
	EdgeID string
	// Ports are the edge's Direct Connect ports (interface names).
	Ports []string
	// Namespaces prefixes the VIF namespaces (default ovpc-dx-<edge id>).
	Namespaces string
	// Poll is how often the edge asks for its VIFs (default 2 s).
	Poll time.Duration
	// SpeakerCommand: see Config.
	SpeakerCommand func() *exec.Cmd
	Logger         *slog.Logger
}

// Controller keeps the edge's ports serving the VIFs the server has on
// their connections, and reports each session's status.
type Controller struct {
	cfg   ControllerConfig
	ports map[string]*Function
	data  *Data

	mu      sync.Mutex
	pending map[string]Status // statuses not yet reported, by VIF
	wake    chan struct{}
}

// NewController builds the functions of cfg's ports.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Poll == 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Namespaces == "" {
		cfg.Namespaces = "ovpc-dx-" + cfg.EdgeID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{cfg: cfg, ports: map[string]*Function{}, data: NewData(), pending: map[string]Status{}, wake: make(chan struct{}, 1)}
	for i, p := range cfg.Ports {
		if _, dup := c.ports[p]; dup {
			return nil, fmt.Errorf("dx: port %s given twice", p)
		}
		f, err := New(Config{Port: p, Namespaces: fmt.Sprintf("%s-%d", cfg.Namespaces, i), SpeakerCommand: cfg.SpeakerCommand, Data: c.data,
			OnStatus: c.queue, Logger: cfg.Logger.With("port", p)})
		if err != nil {
			return nil, err
		}
		c.ports[p] = f
	}
	return c, nil
}

// Bind gives the controller its client of the server (the edge's own
// credentials) and the edge's cache.
func (c *Controller) Bind(client openvpcv1connect.DirectConnectServiceClient, t *tables.Tables) {
	c.cfg.Client = client
	c.data.Bind(t)
}

// Data is the edge data plane's Direct Connect function (list it in the
// edge's functions).
func (c *Controller) Data() *Data { return c.data }

// Functions are the controller's port functions.
func (c *Controller) Functions() map[string]*Function { return c.ports }

func (c *Controller) queue(id string, st Status) {
	c.mu.Lock()
	c.pending[id] = st
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run serves the ports until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Client == nil {
		return fmt.Errorf("dx: the controller was not bound to the server")
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, f := range c.ports {
		g.Go(func() error { return f.Run(ctx) })
	}
	g.Go(func() error { c.poll(ctx); return nil })
	g.Go(func() error { c.report(ctx); return nil })
	return g.Wait()
}

// poll asks the server for this edge's VIFs and hands each port its own.
// A server that cannot be reached leaves the VIFs as they are (headless,
// as a host's cache).
func (c *Controller) poll(ctx context.Context) {
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for n := 0; ; n++ {
		if n%5 == 4 {
			// Counters move without the session changing: report them
			// now and then.
			for _, f := range c.ports {
				for id, st := range f.Statuses() {
					c.queue(id, st)
				}
			}
		}
		r, err := c.cfg.Client.ListEdgeVirtualInterfaces(ctx, connect.NewRequest(&pb.ListEdgeVirtualInterfacesRequest{Edge: c.cfg.EdgeID}))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.cfg.Logger.Warn("dx: listing this edge's virtual interfaces", "err", err)
		} else {
			c.apply(r.Msg.VirtualInterfaces)
		}
		c.data.Refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) apply(evs []*pb.EdgeVirtualInterface) {
	byPort := map[string][]VIF{}
	for _, ev := range evs {
		v, err := vifOf(ev)
		if err != nil {
			c.cfg.Logger.Warn("dx: virtual interface not served", "vif", ev.GetVirtualInterface().GetId(), "err", err)
			continue
		}
		if _, ok := c.ports[ev.Port]; !ok {
			c.queue(v.ID, Status{BGP: idle(fmt.Sprintf("edge %s has no Direct Connect port %s: start it with --dx-port %s", c.cfg.EdgeID, ev.Port, ev.Port))})
			continue
		}
		byPort[ev.Port] = append(byPort[ev.Port], v)
	}
	for p, f := range c.ports {
		if err := f.Set(byPort[p]); err != nil {
			c.cfg.Logger.Warn("dx: port's virtual interfaces", "port", p, "err", err)
		}
	}
}

// vifOf reads what the server sent.
func vifOf(ev *pb.EdgeVirtualInterface) (VIF, error) {
	m := ev.GetVirtualInterface()
	local, err1 := netip.ParsePrefix(m.GetAmazonAddress())
	peer, err2 := netip.ParsePrefix(m.GetCustomerAddress())
	if err1 != nil || err2 != nil {
		return VIF{}, fmt.Errorf("peer addresses %q %q", m.GetAmazonAddress(), m.GetCustomerAddress())
	}
	v := VIF{ID: m.Id, VLAN: uint16(m.Vlan), LocalASN: m.AmazonAsn, PeerASN: m.CustomerAsn, Local: local, Peer: peer,
		AuthKey: m.AuthKey, Hold: time.Duration(m.HoldTime) * time.Second}
	for _, a := range ev.Announce {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return VIF{}, fmt.Errorf("announce %q: %w", a, err)
		}
		v.Announce = append(v.Announce, p)
	}
	return v, v.Validate()
}

// report sends the statuses queued, the latest of each VIF, as they come.
func (c *Controller) report(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = map[string]Status{}
		c.mu.Unlock()
		for id, st := range batch {
			_, err := c.cfg.Client.ReportVirtualInterfaceStatus(ctx, connect.NewRequest(&pb.ReportVirtualInterfaceStatusRequest{VirtualInterface: id, Status: statusProto(st)}))
			if err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("dx: reporting a virtual interface's status", "vif", id, "err", err)
				if connect.CodeOf(err) == connect.CodeUnavailable {
					// Try again with the next change or poll.
					c.mu.Lock()
					if _, newer := c.pending[id]; !newer {
						c.pending[id] = st
					}
					c.mu.Unlock()
				}
			}
		}
	}
}

func idle(reason string) bgp.Status {
	return bgp.Status{State: bgp.Idle, Since: time.Now(), Reason: reason}
}

func statusProto(st Status) *pb.DxBgpStatus {
	b := st.BGP
	p := &pb.DxBgpStatus{BgpState: string(b.State), Reason: b.Reason, OverLimit: b.OverLimit, Flaps: b.Flaps, FramesIn: st.In, FramesOut: st.Out}
	if !b.Since.IsZero() {
		p.Since = timestamppb.New(b.Since)
	}
	for _, x := range b.Learned {
		p.PrefixesReceived = append(p.PrefixesReceived, x.String())
	}
	for _, x := range b.Advertised {
		p.PrefixesAdvertised = append(p.PrefixesAdvertised, x.String())
	}
	slices.Sort(p.PrefixesReceived)
	return p
}
