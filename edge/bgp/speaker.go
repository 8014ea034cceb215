// Package bgp is the edge's BGP speaker: one eBGP session to a customer
// router (a Direct Connect VIF, a VPN tunnel's inside address) that
// announces the VPC's prefixes and reports what the customer announces.
// It wraps GoBGP v4 as a library. GoBGP opens its sockets on arbitrary
// threads, so a speaker cannot be pinned to a network namespace from
// inside a process that uses other namespaces: Process runs a Speaker as a
// child of the edge inside the session's namespace (see process.go).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	pbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// AWS's defaults and limits for a BGP session of a virtual interface or a
// VPN tunnel.
const (
	DefaultHold        = 90 * time.Second
	DefaultKeepalive   = 30 * time.Second
	MinHold            = 3 * time.Second
	DefaultMaxPrefixes = 100 // a private VIF accepts 100 prefixes
	DefaultTTL         = 1   // the peer is on the link
)

// Config is one session. Field comments are the user docs.
type Config struct {
	// LocalASN is our side's ASN (Amazon-side ASN of the vgw or dxgw).
	LocalASN uint32 `json:"local_asn"`
	// PeerASN is the customer router's ASN.
	PeerASN uint32 `json:"peer_asn"`
	// LocalAddr is our address on the link; the speaker listens on it.
	LocalAddr netip.Addr `json:"local_addr"`
	// PeerAddr is the customer router's address on the link.
	PeerAddr netip.Addr `json:"peer_addr"`
	// RouterID defaults to LocalAddr.
	RouterID netip.Addr `json:"router_id,omitzero"`
	// Password is the TCP MD5 key (RFC 2385); empty for none (a VPN
	// tunnel may leave it out; Direct Connect always sets one).
	Password string `json:"password,omitempty"`
	// Hold is the hold time offered (default 90 s, at least 3 s);
	// Keepalive defaults to a third of it.
	Hold      time.Duration `json:"hold,omitempty"`
	Keepalive time.Duration `json:"keepalive,omitempty"`
	// TTL is the outgoing TTL of the session's packets: 1 (default) for a
	// directly connected peer, more for multihop.
	TTL uint8 `json:"ttl,omitempty"`
	// MaxPrefixes caps what the peer may announce (default 100); one more
	// takes the session down (a Cease notification) and Status says why.
	MaxPrefixes int `json:"max_prefixes,omitempty"`
	// Announce are the prefixes announced to the peer (the VPC CIDRs);
	// Speaker.Announce replaces them on a running session.
	Announce []netip.Prefix `json:"announce,omitempty"`
	// ListenPort is the TCP port to listen on (default 179; -1: connect
	// only). Tests that run the peer on the same stack pick another.
	ListenPort int32 `json:"listen_port,omitempty"`
	// PeerPort is the peer's TCP port (default 179).
	PeerPort uint16 `json:"peer_port,omitempty"`
}

// withDefaults fills in what was left out.
func (c Config) withDefaults() Config {
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Keepalive == 0 {
		c.Keepalive = c.Hold / 3
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxPrefixes == 0 {
		c.MaxPrefixes = DefaultMaxPrefixes
	}
	if !c.RouterID.IsValid() {
		c.RouterID = c.LocalAddr
	}
	if c.ListenPort == 0 {
		c.ListenPort = 179
	}
	return c
}

// Validate says what is wrong with a (defaulted) config.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.LocalASN == 0 || c.PeerASN == 0 {
		errs = append(errs, errors.New("bgp: set both the local and the peer ASN (1–4294967294)"))
	}
	if c.LocalASN == c.PeerASN && c.LocalASN != 0 {
		errs = append(errs, fmt.Errorf("bgp: local and peer ASN are both %d; the session is eBGP, give the peer its own ASN", c.LocalASN))
	}
	if !c.LocalAddr.Is4() || !c.PeerAddr.Is4() {
		errs = append(errs, fmt.Errorf("bgp: local (%v) and peer (%v) addresses must be IPv4", c.LocalAddr, c.PeerAddr))
	} else if c.LocalAddr == c.PeerAddr {
		errs = append(errs, fmt.Errorf("bgp: local and peer address are both %v", c.LocalAddr))
	}
	if c.Hold < MinHold {
		errs = append(errs, fmt.Errorf("bgp: hold time %v is below the minimum %v", c.Hold, MinHold))
	}
	if c.Keepalive <= 0 || c.Keepalive > c.Hold/3 {
		errs = append(errs, fmt.Errorf("bgp: keepalive %v must be positive and at most a third of the hold time %v", c.Keepalive, c.Hold))
	}
	if c.Hold%time.Second != 0 || c.Keepalive%time.Second != 0 {
		errs = append(errs, fmt.Errorf("bgp: hold (%v) and keepalive (%v) are whole seconds on the wire", c.Hold, c.Keepalive))
	}
	if len(c.Password) > 80 {
		errs = append(errs, fmt.Errorf("bgp: the MD5 key is %d bytes; Linux takes at most 80", len(c.Password)))
	}
	if c.MaxPrefixes < 0 {
		errs = append(errs, fmt.Errorf("bgp: max prefixes %d is negative", c.MaxPrefixes))
	}
	for _, p := range c.Announce {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			errs = append(errs, fmt.Errorf("bgp: announce %v: give IPv4 network prefixes such as 10.0.0.0/16", p))
		}
	}
	return errors.Join(errs...)
}

// State is the session's state, RFC 4271's names in lower case.
type State string

const (
	Idle        State = "idle"
	Connect     State = "connect"
	Active      State = "active"
	OpenSent    State = "opensent"
	OpenConfirm State = "openconfirm"
	Established State = "established"
)

func stateOf(s pbgp.FSMState) State {
	switch s {
	case pbgp.BGP_FSM_CONNECT:
		return Connect
	case pbgp.BGP_FSM_ACTIVE:
		return Active
	case pbgp.BGP_FSM_OPENSENT:
		return OpenSent
	case pbgp.BGP_FSM_OPENCONFIRM:
		return OpenConfirm
	case pbgp.BGP_FSM_ESTABLISHED:
		return Established
	}
	return Idle
}

// Status is what the speaker knows of its session at one moment.
type Status struct {
	State State     `json:"state"`
	Since time.Time `json:"since"`
	// Reason says why the session last went down, when it did.
	Reason string `json:"reason,omitempty"`
	// OverLimit is set when the peer announced more than MaxPrefixes: the
	// session stays down until the speaker is restarted.
	OverLimit bool `json:"over_limit,omitempty"`
	// Learned are the peer's prefixes in effect (none unless established).
	Learned []netip.Prefix `json:"learned,omitempty"`
	// Advertised are the prefixes we announce.
	Advertised []netip.Prefix `json:"advertised,omitempty"`
	// Flaps counts transitions out of established.
	Flaps uint64 `json:"flaps"`
}

// Speaker is one BGP session.
type Speaker struct {
	cfg Config
	log *slog.Logger
	// onChange gets every new Status; it must not block.
	onChange func(Status)

	mu      sync.Mutex
	st      Status
	learned map[netip.Prefix]struct{}
	srv     *server.BgpServer // set while Run runs
	uuids   map[netip.Prefix][]byte
}

// New checks cfg and returns a speaker; onChange (may be nil) is called
// with each new Status, from one goroutine at a time, and must not block.
func New(cfg Config, log *slog.Logger, onChange func(Status)) (*Speaker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onChange == nil {
		onChange = func(Status) {}
	}
	s := &Speaker{cfg: cfg, log: log, onChange: onChange, learned: map[netip.Prefix]struct{}{}}
	s.st = Status{State: Idle, Since: time.Now(), Advertised: slices.Clone(cfg.Announce)}
	return s, nil
}

// Status is the session's status now.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

func (s *Speaker) statusLocked() Status {
	st := s.st
	st.Learned = slices.Collect(func(yield func(netip.Prefix) bool) {
		for p := range s.learned {
			if !yield(p) {
				return
			}
		}
	})
	slices.SortFunc(st.Learned, comparePrefix)
	st.Advertised = slices.Clone(st.Advertised)
	return st
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Run runs the session until ctx ends, then stops GoBGP (the peer sees a
// Cease) and returns.
func (s *Speaker) Run(ctx context.Context) error {
	c := s.cfg
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	srv := server.NewBgpServer(server.LoggerOption(s.log, lvl))
	go srv.Serve()
	defer srv.Stop()
	global := &api.Global{Asn: c.LocalASN, RouterId: c.RouterID.String(), ListenPort: c.ListenPort}
	if c.ListenPort > 0 {
		global.ListenAddresses = []string{c.LocalAddr.String()}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("bgp: start: %w", err)
	}
	if err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: s.peerEvent,
		OnBestPath:   s.bestPaths,
	}, server.WatchPeer(), server.WatchBestPath(true)); err != nil {
		return fmt.Errorf("bgp: watch: %w", err)
	}
	ipv4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: c.PeerAddr.String(),
			PeerAsn:         c.PeerASN,
			LocalAsn:        c.LocalASN,
			AuthPassword:    c.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(c.Hold / time.Second),
			KeepaliveInterval: uint64(c.Keepalive / time.Second),
			ConnectRetry:      uint64(max(1, min(5, c.Hold/time.Second/3))),
		}},
		Transport: &api.Transport{LocalAddress: c.LocalAddr.String(), RemotePort: uint32(c.PeerPort)},
		AfiSafis: []*api.AfiSafi{{
			Config:       &api.AfiSafiConfig{Family: ipv4, Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: ipv4, MaxPrefixes: uint32(c.MaxPrefixes)},
		}},
	}
	if c.TTL > 1 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(c.TTL)}
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		return fmt.Errorf("bgp: peer %v: %w", c.PeerAddr, err)
	}
	s.mu.Lock()
	s.srv = srv
	s.uuids = map[netip.Prefix][]byte{}
	s.mu.Unlock()
	if err := s.Announce(c.Announce); err != nil {
		return err
	}
	s.diagnose(ctx)
	s.mu.Lock()
	s.srv = nil
	s.mu.Unlock()
	return nil
}

// Announce replaces the prefixes announced to the peer. Before Run it
// changes what Run will announce.
func (s *Speaker) Announce(prefixes []netip.Prefix) error {
	for _, p := range prefixes {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			return fmt.Errorf("bgp: announce %v: give IPv4 network prefixes such as 10.0.0.0/16", p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := slices.Clone(prefixes)
	slices.SortFunc(want, comparePrefix)
	want = slices.Compact(want)
	if s.srv == nil {
		s.cfg.Announce = want
		s.st.Advertised = want
		return nil
	}
	var errs []error
	for p := range s.uuids {
		if !slices.Contains(want, p) {
			if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{s.path(p)}}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: withdraw %v: %w", p, err))
				continue
			}
			delete(s.uuids, p)
		}
	}
	for _, p := range want {
		if _, ok := s.uuids[p]; ok {
			continue
		}
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{s.path(p)}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %v: %w", p, err))
			continue
		}
		s.uuids[p] = nil
	}
	s.st.Advertised = slices.Collect(func(yield func(netip.Prefix) bool) {
		for _, p := range want {
			if _, ok := s.uuids[p]; ok && !yield(p) {
				return
			}
		}
	})
	go s.onChange(s.statusLocked())
	return errors.Join(errs...)
}

// path is our announcement of p, next hop ourselves.
func (s *Speaker) path(p netip.Prefix) *apiutil.Path {
	nlri, _ := pbgp.NewIPAddrPrefix(p)
	nh, _ := pbgp.NewPathAttributeNextHop(s.cfg.LocalAddr)
	return &apiutil.Path{
		Family: pbgp.RF_IPv4_UC,
		Nlri:   nlri,
		Attrs:  []pbgp.PathAttributeInterface{pbgp.NewPathAttributeOrigin(0), nh},
	}
}

func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE || ev.Peer.State.NeighborAddress != s.cfg.PeerAddr {
		return
	}
	st := stateOf(ev.Peer.State.SessionState)
	s.mu.Lock()
	was := s.st.State
	if st == was {
		s.mu.Unlock()
		return
	}
	s.st.State, s.st.Since = st, at
	if was == Established {
		s.st.Flaps++
		// GoBGP withdraws a dead peer's paths as best-path events too;
		// clearing here makes Status right at once.
		clear(s.learned)
		s.st.Reason = ev.Peer.State.DisconnectMessage
		if s.st.Reason == "" {
			s.st.Reason = ev.Peer.State.DisconnectReason.String()
		}
	}
	if ev.Peer.State.AdminState == api.PeerState_ADMIN_STATE_PFX_CT {
		s.st.OverLimit = true
		s.st.Reason = fmt.Sprintf("the peer announced more than %d prefixes (the limit of this session); it stays down until the limit or the announcements change", s.cfg.MaxPrefixes)
	}
	out := s.statusLocked()
	s.mu.Unlock()
	s.log.Info("bgp session", "peer", s.cfg.PeerAddr, "state", st, "reason", out.Reason)
	s.onChange(out)
}

func (s *Speaker) bestPaths(paths []*apiutil.Path, _ time.Time) {
	s.mu.Lock()
	changed := false
	for _, p := range paths {
		if p.PeerAddress != s.cfg.PeerAddr && !(p.Withdrawal && !p.PeerAddress.IsValid()) {
			continue // ours, or another peer's
		}
		pfx, ok := prefixOf(p.Nlri)
		if !ok {
			continue
		}
		_, had := s.learned[pfx]
		if p.Withdrawal && had {
			delete(s.learned, pfx)
			changed = true
		} else if !p.Withdrawal && !had {
			s.learned[pfx] = struct{}{}
			changed = true
		}
	}
	var out Status
	if changed {
		out = s.statusLocked()
	}
	s.mu.Unlock()
	if changed {
		s.onChange(out)
	}
}

func prefixOf(n pbgp.NLRI) (netip.Prefix, bool) {
	p, ok := n.(*pbgp.IPAddrPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	pfx := p.Prefix
	return pfx, pfx.IsValid() && pfx.Addr().Is4()
}

// diagnose, until ctx ends, explains a session that does not come up with
// what the kernel saw: TCP segments with a wrong MD5 signature, or none.
func (s *Speaker) diagnose(ctx context.Context) {
	f0, n0, ok := md5Counters()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ok || s.cfg.Password == "" {
			continue
		}
		f, n, _ := md5Counters()
		reason := ""
		switch {
		case f > f0:
			reason = "the peer's TCP segments carry a wrong MD5 signature: its BGP key differs from this session's (the configuration openvpc prints has the right one)"
		case n > n0:
			reason = "the peer's TCP segments carry no MD5 signature: set the session's BGP key on the router"
		}
		f0, n0 = f, n
		s.mu.Lock()
		if reason == "" || s.st.State == Established || s.st.Reason == reason {
			s.mu.Unlock()
			continue
		}
		s.st.Reason = reason
		out := s.statusLocked()
		s.mu.Unlock()
		s.onChange(out)
	}
}
