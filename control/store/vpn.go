package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Site-to-site VPN: customer gateways (cgw/<id>), virtual private
// gateways (vgw/<id>, vgwof/<vpc> → the one attached to a VPC), VPN
// connections (vpn/<id>, with their tunnels' keys), the tunnels' states
// as edges report them (vpntun/<vpn-id>.<n>), inside CIDRs unique per vgw
// (inside/<vgw>/<cidr> → vpn id) and outside addresses unique among all
// public addresses (pubip/<addr> → vpn id, shared with Elastic IPs).

// DefaultAmazonASN is the VPC side's ASN when none is given (AWS's).
const DefaultAmazonASN = 64512

// DefaultCustomerASN is a customer gateway's ASN when none is given.
const DefaultCustomerASN = 65000

// DefaultDPDTimeout is a tunnel's dead peer detection timeout, in seconds (AWS's).
const DefaultDPDTimeout = 30

func (s *Store) vgwOfKey(vpc string) string { return s.key("vgwof", vpc) }
func (s *Store) insideKey(vgw, cidr string) string {
	return s.key("inside", vgw, strings.ReplaceAll(cidr, "/", "_"))
}
func (s *Store) tunnelKey(vpn string, n int) string { return s.key(RecTunnelStatus, TunnelKey(vpn, n)) }
func (s *Store) tunnelPrefix() string               { return s.key(RecTunnelStatus) + "/" }
func (s *Store) cgwKey(id string) string            { return s.resKey(model.KindCustomerGateway, id) }
func (s *Store) vpnKey(id string) string            { return s.resKey(model.KindVPNConnection, id) }
func (s *Store) vgwKey(id string) string            { return s.resKey(model.KindVPNGateway, id) }

// TunnelKey names tunnel n (0 or 1) of a VPN connection: "vpn-….n".
func TunnelKey(vpn string, n int) string { return fmt.Sprintf("%s.%d", vpn, n) }

// createNamed commits t, which creates a resource of kind k named name,
// turning a lost race into the error a user understands.
func (s *Store) createNamed(ctx context.Context, k model.Kind, name string, t *txn) error {
	ok, _, err := s.commit(ctx, t)
	if err != nil || ok {
		return err
	}
	if err := s.nameFree(ctx, k, name); err != nil {
		return err
	}
	return model.Unavailablef("%s %q: a concurrent change got in the way; try again", k.Noun(), name)
}

// CreateCustomerGateway records a site's router: its public address and ASN.
func (s *Store) CreateCustomerGateway(ctx context.Context, name string, ip netip.Addr, asn uint32) (*pb.CustomerGateway, error) {
	if name != "" {
		if err := model.ValidateName(model.KindCustomerGateway, name); err != nil {
			return nil, err
		}
	}
	if !ip.Is4() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast() {
		return nil, model.Invalidf("customer gateway address %v is not a usable IPv4 unicast address; give the router's public address, e.g. 203.0.113.7", ip)
	}
	if asn == 0 {
		asn = DefaultCustomerASN
	}
	if err := ValidateASN(asn, true); err != nil {
		return nil, err
	}
	g := &pb.CustomerGateway{Id: model.NewID(model.KindCustomerGateway), Name: name, IpAddress: ip.String(), BgpAsn: asn, CreateTime: timestamppb.Now()}
	var t txn
	if name != "" {
		t.absent(s.nameKey(model.KindCustomerGateway, name))
		t.put(s.nameKey(model.KindCustomerGateway, name), g.Id)
	}
	t.putProto(s.cgwKey(g.Id), g)
	return g, s.createNamed(ctx, model.KindCustomerGateway, name, &t)
}

// GetCustomerGateway reads a customer gateway by name or id.
func (s *Store) GetCustomerGateway(ctx context.Context, ref string) (*pb.CustomerGateway, error) {
	g := new(pb.CustomerGateway)
	_, err := s.load(ctx, model.KindCustomerGateway, ref, g)
	return g, err
}

// ListCustomerGateways lists every customer gateway, by name.
func (s *Store) ListCustomerGateways(ctx context.Context) ([]*pb.CustomerGateway, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindCustomerGateway))+"/", func() *pb.CustomerGateway { return new(pb.CustomerGateway) })
	slices.SortFunc(all, func(a, b *pb.CustomerGateway) int { return compareNames(a.Name, a.Id, b.Name, b.Id) })
	return all, err
}

// DeleteCustomerGateway deletes a customer gateway no VPN connection uses.
func (s *Store) DeleteCustomerGateway(ctx context.Context, ref string) error {
	g := new(pb.CustomerGateway)
	rev, err := s.load(ctx, model.KindCustomerGateway, ref, g)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.cgwKey(g.Id), rev)
	t.emptyPrefix(s.refPrefix(g.Id))
	t.del(s.cgwKey(g.Id))
	if g.Name != "" {
		t.del(s.nameKey(model.KindCustomerGateway, g.Name))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	if in, err := s.blockers(ctx, g.Id); err != nil || in != "" {
		if err != nil {
			return err
		}
		return model.Preconditionf("customer gateway %s is used by %s; delete those VPN connections first (openvpc vpn delete …)", g.Id, in)
	}
	return model.Unavailablef("customer gateway %s changed meanwhile; try again", g.Id)
}

// CreateVpnGateway creates a detached virtual private gateway.
func (s *Store) CreateVpnGateway(ctx context.Context, name string, asn uint32) (*pb.VpnGateway, error) {
	if name != "" {
		if err := model.ValidateName(model.KindVPNGateway, name); err != nil {
			return nil, err
		}
	}
	if asn == 0 {
		asn = DefaultAmazonASN
	}
	if err := ValidateASN(asn, false); err != nil {
		return nil, err
	}
	g := &pb.VpnGateway{Id: model.NewID(model.KindVPNGateway), Name: name, AmazonSideAsn: asn, CreateTime: timestamppb.Now()}
	var t txn
	if name != "" {
		t.absent(s.nameKey(model.KindVPNGateway, name))
		t.put(s.nameKey(model.KindVPNGateway, name), g.Id)
	}
	t.putProto(s.vgwKey(g.Id), g)
	return g, s.createNamed(ctx, model.KindVPNGateway, name, &t)
}

// GetVpnGateway reads a virtual private gateway by name or id.
func (s *Store) GetVpnGateway(ctx context.Context, ref string) (*pb.VpnGateway, error) {
	g := new(pb.VpnGateway)
	_, err := s.load(ctx, model.KindVPNGateway, ref, g)
	return g, err
}

// ListVpnGateways lists every virtual private gateway, by name.
func (s *Store) ListVpnGateways(ctx context.Context) ([]*pb.VpnGateway, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindVPNGateway))+"/", func() *pb.VpnGateway { return new(pb.VpnGateway) })
	slices.SortFunc(all, func(a, b *pb.VpnGateway) int { return compareNames(a.Name, a.Id, b.Name, b.Id) })
	return all, err
}

// AttachVpnGateway attaches a detached vgw to a VPC that has none (a VPC
// has at most one, as in AWS).
func (s *Store) AttachVpnGateway(ctx context.Context, ref, vpcRef string) (*pb.VpnGateway, error) {
	var out *pb.VpnGateway
	err := retry(ctx, "attach virtual private gateway", func() error {
		g := new(pb.VpnGateway)
		rev, err := s.load(ctx, model.KindVPNGateway, ref, g)
		if err != nil {
			return err
		}
		vpc, err := s.GetVPC(ctx, vpcRef)
		if err != nil {
			return err
		}
		if g.VpcId != "" {
			return model.Preconditionf("virtual private gateway %s is already attached to %s; detach it first (openvpc vgw detach %s)", g.Id, g.VpcId, g.Id)
		}
		g.VpcId = vpc.Id
		var t txn
		t.unchanged(s.vgwKey(g.Id), rev)
		t.present(s.resKey(model.KindVPC, vpc.Id))
		t.absent(s.vgwOfKey(vpc.Id))
		t.putProto(s.vgwKey(g.Id), g)
		t.put(s.vgwOfKey(vpc.Id), g.Id)
		t.put(s.refKey(vpc.Id, g.Id), "")
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if r, err := s.c.Get(ctx, s.vgwOfKey(vpc.Id)); err == nil && len(r.Kvs) > 0 {
				return model.Preconditionf("VPC %s already has virtual private gateway %s; a VPC has at most one", vpc.Id, r.Kvs[0].Value)
			}
			return errRetry
		}
		out = g
		return nil
	})
	return out, err
}

// DetachVpnGateway detaches a vgw from its VPC: the routes it propagated
// leave the VPC's route tables (its connections stay, and come back with
// it when it is attached again).
func (s *Store) DetachVpnGateway(ctx context.Context, ref string) (*pb.VpnGateway, error) {
	var out *pb.VpnGateway
	err := retry(ctx, "detach virtual private gateway", func() error {
		g := new(pb.VpnGateway)
		rev, err := s.load(ctx, model.KindVPNGateway, ref, g)
		if err != nil {
			return err
		}
		if g.VpcId == "" {
			return model.Preconditionf("virtual private gateway %s is not attached to a VPC", g.Id)
		}
		vpc := g.VpcId
		g.VpcId = ""
		var t txn
		t.unchanged(s.vgwKey(g.Id), rev)
		t.putProto(s.vgwKey(g.Id), g)
		t.del(s.vgwOfKey(vpc))
		t.del(s.refKey(vpc, g.Id))
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

// DeleteVpnGateway deletes a detached vgw no VPN connection uses.
func (s *Store) DeleteVpnGateway(ctx context.Context, ref string) error {
	g := new(pb.VpnGateway)
	rev, err := s.load(ctx, model.KindVPNGateway, ref, g)
	if err != nil {
		return err
	}
	if g.VpcId != "" {
		return model.Preconditionf("virtual private gateway %s is attached to %s; detach it first (openvpc vgw detach %s)", g.Id, g.VpcId, g.Id)
	}
	var t txn
	t.unchanged(s.vgwKey(g.Id), rev)
	t.emptyPrefix(s.refPrefix(g.Id))
	t.del(s.vgwKey(g.Id))
	if g.Name != "" {
		t.del(s.nameKey(model.KindVPNGateway, g.Name))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	if in, err := s.blockers(ctx, g.Id); err != nil || in != "" {
		if err != nil {
			return err
		}
		return model.Preconditionf("virtual private gateway %s has connections %s; delete them first (openvpc vpn delete …)", g.Id, in)
	}
	return model.Unavailablef("virtual private gateway %s changed meanwhile; try again", g.Id)
}

// TunnelOptions are what a caller may choose for a tunnel; zero fields
// get generated values.
type TunnelOptions struct {
	InsideCIDR netip.Prefix
	PSK        string
	DPDTimeout uint32 // seconds
}

// VpnConnectionSpec is a VPN connection to create.
type VpnConnectionSpec struct {
	Name             string
	CustomerGateway  string
	VpnGateway       string
	StaticRoutesOnly bool
	Tunnels          [2]TunnelOptions
}

// CreateVpnConnection creates a connection with two tunnels: each gets an
// outside address from the VPN pool (the Elastic IP pool when none is
// configured), an inside /30 unique within the vgw, a pre-shared key and
// a DPD timeout, as given or generated.
func (s *Store) CreateVpnConnection(ctx context.Context, spec VpnConnectionSpec) (*pb.VpnConnection, error) {
	if spec.Name != "" {
		if err := model.ValidateName(model.KindVPNConnection, spec.Name); err != nil {
			return nil, err
		}
	}
	for i, o := range spec.Tunnels {
		if o.InsideCIDR.IsValid() {
			if err := ValidateInsideCIDR(o.InsideCIDR); err != nil {
				return nil, fmt.Errorf("tunnel %d: %w", i+1, err)
			}
		}
		if o.PSK != "" {
			if err := ValidatePSK(o.PSK); err != nil {
				return nil, fmt.Errorf("tunnel %d: %w", i+1, err)
			}
		}
		if o.DPDTimeout > 3600 {
			return nil, model.Invalidf("tunnel %d: DPD timeout %d s is more than an hour; give 1–3600 (AWS's default is 30)", i+1, o.DPDTimeout)
		}
	}
	if a, b := spec.Tunnels[0].InsideCIDR, spec.Tunnels[1].InsideCIDR; a.IsValid() && a == b {
		return nil, model.Invalidf("both tunnels have inside CIDR %s; give each its own /30", a)
	}
	pools := s.cfg.VPNPools
	if len(pools) == 0 {
		pools = s.cfg.EIPPools
	}
	if len(pools) == 0 {
		return nil, model.Preconditionf("this server has no address pool for VPN tunnels; start it with --vpn-pool CIDR (or --eip-pool CIDR), e.g. 198.51.100.0/24")
	}
	var out *pb.VpnConnection
	err := retry(ctx, "create VPN connection", func() error {
		cgw := new(pb.CustomerGateway)
		crev, err := s.load(ctx, model.KindCustomerGateway, spec.CustomerGateway, cgw)
		if err != nil {
			return err
		}
		vgw := new(pb.VpnGateway)
		grev, err := s.load(ctx, model.KindVPNGateway, spec.VpnGateway, vgw)
		if err != nil {
			return err
		}
		used, err := s.keysUnder(ctx, s.key("pubip")+"/")
		if err != nil {
			return err
		}
		insideUsed, err := s.keysUnder(ctx, s.key("inside", vgw.Id)+"/")
		if err != nil {
			return err
		}
		c := &pb.VpnConnection{Id: model.NewID(model.KindVPNConnection), Name: spec.Name, CustomerGatewayId: cgw.Id,
			VpnGatewayId: vgw.Id, StaticRoutesOnly: spec.StaticRoutesOnly, CreateTime: timestamppb.Now()}
		var t txn
		t.unchanged(s.cgwKey(cgw.Id), crev)
		t.unchanged(s.vgwKey(vgw.Id), grev)
		for i, o := range spec.Tunnels {
			ip, ok := freeAddress(pools, used)
			if !ok {
				return model.Preconditionf("every address of the VPN pools %v is taken; free one or add a pool", pools)
			}
			used = append(used, ip.String())
			inside := o.InsideCIDR
			if !inside.IsValid() {
				if inside, err = freeInside(insideUsed); err != nil {
					return err
				}
			}
			if slices.Contains(insideUsed, insideName(inside)) {
				return model.Existsf("tunnel %d: inside CIDR %s is used by another connection of %s; pick another /30", i+1, inside, vgw.Id)
			}
			insideUsed = append(insideUsed, insideName(inside))
			psk := o.PSK
			if psk == "" {
				psk = newPSK()
			}
			dpd := o.DPDTimeout
			if dpd == 0 {
				dpd = DefaultDPDTimeout
			}
			c.Tunnels = append(c.Tunnels, &pb.VpnTunnel{OutsideAddress: ip.String(), InsideCidr: inside.String(), PreSharedKey: psk, DpdTimeoutSeconds: dpd})
			t.absent(s.pubIPKey(ip.String()))
			t.put(s.pubIPKey(ip.String()), c.Id)
			t.absent(s.insideKey(vgw.Id, inside.String()))
			t.put(s.insideKey(vgw.Id, inside.String()), c.Id)
		}
		if spec.Name != "" {
			t.absent(s.nameKey(model.KindVPNConnection, spec.Name))
			t.put(s.nameKey(model.KindVPNConnection, spec.Name), c.Id)
		}
		t.putProto(s.vpnKey(c.Id), c)
		t.put(s.refKey(cgw.Id, c.Id), "")
		t.put(s.refKey(vgw.Id, c.Id), "")
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindVPNConnection, spec.Name); err != nil {
				return err
			}
			return errRetry
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.fillTunnels(ctx, out)
}

func insideName(p netip.Prefix) string { return strings.ReplaceAll(p.String(), "/", "_") }

// freeInside picks a random free /30 of 169.254.0.0/16 that AWS does not
// reserve (random, as AWS does, so two vgws rarely pick the same).
func freeInside(used []string) (netip.Prefix, error) {
	for range 1000 {
		n, err := rand.Int(rand.Reader, big.NewInt(1<<14))
		if err != nil {
			return netip.Prefix{}, err
		}
		v := uint32(169)<<24 | uint32(254)<<16 | uint32(n.Int64())<<2
		p := netip.PrefixFrom(model.AddrFrom4(v), 30)
		if ValidateInsideCIDR(p) == nil && !slices.Contains(used, insideName(p)) {
			return p, nil
		}
	}
	return netip.Prefix{}, model.Preconditionf("no free tunnel inside CIDR found in 169.254.0.0/16 for this gateway; give one")
}

const pskChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"

// newPSK makes a 32-character key by AWS's rules; it starts with a
// letter (never '0').
func newPSK() string {
	b := make([]byte, 32)
	for i := range b {
		max := len(pskChars)
		if i == 0 {
			max = 52
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
		if err != nil {
			panic("store: no randomness: " + err.Error())
		}
		b[i] = pskChars[n.Int64()]
	}
	return string(b)
}

// GetVpnConnection reads a connection with its tunnels' placement and
// state; keys are left out unless withKeys.
func (s *Store) GetVpnConnection(ctx context.Context, ref string, withKeys bool) (*pb.VpnConnection, error) {
	c := new(pb.VpnConnection)
	if _, err := s.load(ctx, model.KindVPNConnection, ref, c); err != nil {
		return nil, err
	}
	if !withKeys {
		for _, t := range c.Tunnels {
			t.PreSharedKey = ""
		}
	}
	return c, s.fillTunnels(ctx, c)
}

// ListVpnConnections lists every connection, keys left out.
func (s *Store) ListVpnConnections(ctx context.Context) ([]*pb.VpnConnection, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindVPNConnection))+"/", func() *pb.VpnConnection { return new(pb.VpnConnection) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *pb.VpnConnection) int { return compareNames(a.Name, a.Id, b.Name, b.Id) })
	edges, err := s.vpnEdges(ctx)
	if err != nil {
		return nil, err
	}
	status, err := s.allTunnelStatus(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		for _, t := range c.Tunnels {
			t.PreSharedKey = ""
		}
		FillTunnels(c, edges, status)
	}
	return all, nil
}

// fillTunnels adds placement, state and the preferred tunnel.
func (s *Store) fillTunnels(ctx context.Context, c *pb.VpnConnection) error {
	edges, err := s.vpnEdges(ctx)
	if err != nil {
		return err
	}
	status, err := s.allTunnelStatus(ctx)
	if err != nil {
		return err
	}
	FillTunnels(c, edges, status)
	return nil
}

// FillTunnels sets each tunnel's edge (PlaceTunnels over edges), its last
// reported status (by TunnelKey) and which one is preferred.
func FillTunnels(c *pb.VpnConnection, edges []string, status map[string]*pb.TunnelStatus) {
	place := PlaceTunnels(c.Id, edges)
	var sts []*pb.TunnelStatus
	for i, t := range c.Tunnels {
		if i < 2 {
			t.EdgeId = place[i]
		}
		t.Status = status[TunnelKey(c.Id, i)]
		if t.Status != nil && t.Status.EdgeId != t.EdgeId {
			// A report from an edge the tunnel has moved away from is stale.
			t.Status = nil
		}
		if t.Status == nil {
			t.Status = &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_DOWN, Detail: "no report from its edge yet"}
			if t.EdgeId == "" {
				t.Status.Detail = "no edge serves VPN; start one (openvpc edge --vpn …)"
			}
		}
		t.Preferred = false
		sts = append(sts, t.Status)
	}
	if p := PreferredTunnel(sts); p >= 0 {
		c.Tunnels[p].Preferred = true
	}
}

// PlaceTunnels puts a connection's two tunnels on edges (the ids of the
// healthy edges that serve VPN): on two different ones when there are two
// or more. Each tunnel goes to the edge that ranks best for it by a hash
// of (connection, tunnel, edge) — tunnel 2 among the edges tunnel 1 is not
// on (rendezvous hashing) — so every server computes the same, connections
// spread, and an edge joining or leaving moves few tunnels: those it takes
// or held (and, rarely, tunnel 2 onto the edge tunnel 1 left). No edges: "".
func PlaceTunnels(vpn string, edges []string) [2]string {
	pick := func(n byte, not string) string {
		best, bs := "", uint64(0)
		for _, e := range edges {
			if e == not && len(edges) > 1 {
				continue
			}
			// SHA-256, not FNV: ranking needs every bit mixed (FNV of ids that
			// differ in their last characters ranks badly).
			sum := sha256.Sum256([]byte(vpn + "." + string('0'+n) + "\x00" + e))
			if s := binary.BigEndian.Uint64(sum[:8]); best == "" || s > bs || s == bs && e < best {
				best, bs = e, s
			}
		}
		return best
	}
	first := pick(0, "")
	return [2]string{first, pick(1, first)}
}

// PreferredTunnel is the tunnel hosts send a connection's traffic to: of
// the tunnels up, the one up the longest, so traffic stays where it is
// when the other comes (back) up and flows keep their SA; -1 when none is
// up. A tie goes to the lower tunnel.
func PreferredTunnel(sts []*pb.TunnelStatus) int {
	best := -1
	for i, st := range sts {
		if !Carrying(st) {
			continue
		}
		if best < 0 || st.GetSince().AsTime().Before(sts[best].GetSince().AsTime()) {
			best = i
		}
	}
	return best
}

// vpnEdges lists the healthy edges that serve VPN, sorted.
func (s *Store) vpnEdges(ctx context.Context) ([]string, error) {
	hs, err := listProto(ctx, s, s.key("host")+"/", func() *pb.Host { return new(pb.Host) })
	if err != nil {
		return nil, err
	}
	return VPNEdges(hs), nil
}

// VPNEdges picks, of hosts, the healthy edges with the VPN function, sorted.
func VPNEdges(hs []*pb.Host) []string {
	var out []string
	for _, h := range hs {
		if h.Role != pb.HostRole_HOST_ROLE_EDGE || h.Unhealthy {
			continue
		}
		for _, f := range h.Functions {
			if f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN {
				out = append(out, h.Id)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// allTunnelStatus reads every tunnel's last report, by TunnelKey.
func (s *Store) allTunnelStatus(ctx context.Context) (map[string]*pb.TunnelStatus, error) {
	r, err := s.c.Get(ctx, s.tunnelPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make(map[string]*pb.TunnelStatus, len(r.Kvs))
	for _, kv := range r.Kvs {
		st := new(pb.TunnelStatus)
		if err := proto.Unmarshal(kv.Value, st); err != nil {
			return nil, fmt.Errorf("store: corrupt value at %s: %w", kv.Key, err)
		}
		k := string(kv.Key)
		out[k[strings.LastIndexByte(k, '/')+1:]] = st
	}
	return out, nil
}

// DeleteVpnConnection deletes a connection: its addresses, inside CIDRs,
// propagated routes and tunnel states go with it.
func (s *Store) DeleteVpnConnection(ctx context.Context, ref string) error {
	c := new(pb.VpnConnection)
	rev, err := s.load(ctx, model.KindVPNConnection, ref, c)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.vpnKey(c.Id), rev)
	t.del(s.vpnKey(c.Id))
	if c.Name != "" {
		t.del(s.nameKey(model.KindVPNConnection, c.Name))
	}
	for i, tu := range c.Tunnels {
		t.del(s.pubIPKey(tu.OutsideAddress))
		t.del(s.insideKey(c.VpnGatewayId, tu.InsideCidr))
		t.del(s.tunnelKey(c.Id, i))
	}
	t.del(s.propKey(c.VpnGatewayId, c.Id))
	t.del(s.refKey(c.CustomerGatewayId, c.Id))
	t.del(s.refKey(c.VpnGatewayId, c.Id))
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	return model.Unavailablef("VPN connection %s changed meanwhile; try again", c.Id)
}

// AddVpnRoute adds a static route (a site prefix) to a static-routes-only
// connection; it propagates (VPN_STATIC) through the connection's vgw in
// the same transaction.
func (s *Store) AddVpnRoute(ctx context.Context, ref string, dest netip.Prefix) (*pb.VpnConnection, error) {
	return s.changeVpnRoute(ctx, ref, dest, true)
}

// DeleteVpnRoute removes a static route and its propagation.
func (s *Store) DeleteVpnRoute(ctx context.Context, ref string, dest netip.Prefix) (*pb.VpnConnection, error) {
	return s.changeVpnRoute(ctx, ref, dest, false)
}

// maxVpnRoutes is AWS's limit of static routes per VPN connection.
const maxVpnRoutes = 100

func (s *Store) changeVpnRoute(ctx context.Context, ref string, dest netip.Prefix, add bool) (*pb.VpnConnection, error) {
	if err := ValidateSiteRoute(dest); err != nil {
		return nil, err
	}
	var out *pb.VpnConnection
	err := retry(ctx, "VPN route", func() error {
		c := new(pb.VpnConnection)
		rev, err := s.load(ctx, model.KindVPNConnection, ref, c)
		if err != nil {
			return err
		}
		if !c.StaticRoutesOnly {
			return model.Preconditionf("VPN connection %s learns its routes by BGP; static routes are for connections created with --static-routes-only", c.Id)
		}
		d := dest.String()
		has := slices.Contains(c.Routes, d)
		switch {
		case add && has:
			return model.Existsf("VPN connection %s already has route %s", c.Id, d)
		case !add && !has:
			return model.NotFoundf("VPN connection %s has no route %s", c.Id, d)
		case add && len(c.Routes) >= maxVpnRoutes:
			return model.Preconditionf("VPN connection %s has %d static routes, the limit; summarise them into fewer prefixes", c.Id, maxVpnRoutes)
		case add:
			c.Routes = append(c.Routes, d)
			slices.SortFunc(c.Routes, comparePrefixStrings)
		default:
			c.Routes = slices.DeleteFunc(c.Routes, func(r string) bool { return r == d })
		}
		var t txn
		t.unchanged(s.vpnKey(c.Id), rev)
		t.putProto(s.vpnKey(c.Id), c)
		var ps []netip.Prefix
		for _, r := range c.Routes {
			ps = append(ps, netip.MustParsePrefix(r))
		}
		s.putPropagated(&t, c.VpnGatewayId, c.Id, pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, ps)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, t := range out.Tunnels {
		t.PreSharedKey = ""
	}
	return out, s.fillTunnels(ctx, out)
}

// ReportTunnelState records what an edge says of a tunnel placed on it.
// A report from an edge the tunnel is not placed on is refused, so a
// stale edge cannot claim a tunnel up.
func (s *Store) ReportTunnelState(ctx context.Context, edge, vpn string, n int, st *pb.TunnelStatus) error {
	if n < 0 || n > 1 {
		return model.Invalidf("tunnel %d: a VPN connection has tunnels 0 and 1", n)
	}
	c := new(pb.VpnConnection)
	if _, err := s.load(ctx, model.KindVPNConnection, vpn, c); err != nil {
		return err
	}
	edges, err := s.vpnEdges(ctx)
	if err != nil {
		return err
	}
	place := PlaceTunnels(c.Id, edges)
	if place[n] != edge {
		return model.Preconditionf("tunnel %d of %s is placed on edge %q, not %s; the edge should drop it", n, c.Id, place[n], edge)
	}
	if err := ValidateBGPStatus(st.GetBgp()); err != nil {
		return err
	}
	st = proto.CloneOf(st)
	st.EdgeId = edge
	st.ReportTime = timestamppb.Now()
	if st.Since == nil {
		st.Since = st.ReportTime
	}
	old := new(pb.TunnelStatus)
	if _, _, err := s.getProto(ctx, s.tunnelKey(c.Id, n), old); err != nil {
		return err
	}
	other, err := s.otherTunnelStatus(ctx, c, n, place)
	if err != nil {
		return err
	}
	sts := make([]*pb.TunnelStatus, 2)
	sts[n], sts[1-n] = st, other
	var t txn
	t.present(s.vpnKey(c.Id))
	t.putProto(s.tunnelKey(c.Id, n), st)
	// What the sessions learned propagates with the report that says so,
	// in one transaction: a session down withdraws its routes at once.
	if err := s.putBGPPropagated(ctx, &t, c, sts); err != nil {
		return err
	}
	ok, _, err := s.commit(ctx, &t)
	if err == nil && !ok {
		return model.NotFoundf("VPN connection %s was deleted meanwhile", c.Id)
	}
	if err != nil {
		return err
	}
	if Carrying(old) && !Carrying(st) {
		// A human should know: the connection runs on one tunnel, or none.
		ev := &pb.SecurityEvent{Time: st.ReportTime, HostId: edge, Reason: ReasonTunnelDown, OuterSrc: c.Tunnels[n].OutsideAddress,
			Detail: tunnelDownDetail(c.Id, n, st), Count: 1, Operational: true,
			FirstSeen: st.ReportTime, LastSeen: st.ReportTime, HostTime: st.Since}
		if _, err := s.PutEvent(ctx, ev, TunnelKey(c.Id, n)); err != nil {
			s.cfg.Logger.Warn("store: a tunnel-down event was not recorded", "vpn", c.Id, "tunnel", n, "err", err)
		}
	}
	return nil
}

// ReasonTunnelDown is the operational event of a VPN tunnel that was up
// going down.
const ReasonTunnelDown = "vpn-tunnel-down"

func tunnelStateName(s pb.TunnelState) string {
	switch s {
	case pb.TunnelState_TUNNEL_STATE_DOWN:
		return "down"
	case pb.TunnelState_TUNNEL_STATE_CONNECTING:
		return "connecting"
	case pb.TunnelState_TUNNEL_STATE_UP:
		return "up"
	}
	return "unknown"
}

// EdgeTunnels lists the tunnels placed on edge, with keys and what the
// edge needs to run them.
func (s *Store) EdgeTunnels(ctx context.Context, edge string) ([]*pb.EdgeTunnel, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindVPNConnection))+"/", func() *pb.VpnConnection { return new(pb.VpnConnection) })
	if err != nil {
		return nil, err
	}
	edges, err := s.vpnEdges(ctx)
	if err != nil {
		return nil, err
	}
	var out []*pb.EdgeTunnel
	for _, c := range all {
		place := PlaceTunnels(c.Id, edges)
		if place[0] != edge && place[1] != edge {
			continue
		}
		cgw := new(pb.CustomerGateway)
		if _, _, err := s.getProto(ctx, s.cgwKey(c.CustomerGatewayId), cgw); err != nil {
			return nil, err
		}
		vgw := new(pb.VpnGateway)
		if _, _, err := s.getProto(ctx, s.vgwKey(c.VpnGatewayId), vgw); err != nil {
			return nil, err
		}
		vpc := new(pb.Vpc)
		if vgw.VpcId != "" {
			if _, _, err := s.getProto(ctx, s.resKey(model.KindVPC, vgw.VpcId), vpc); err != nil {
				return nil, err
			}
		}
		for i, tu := range c.Tunnels {
			if i < 2 && place[i] == edge {
				et := &pb.EdgeTunnel{VpnConnectionId: c.Id, Tunnel: uint32(i), Config: tu, PeerAddress: cgw.IpAddress,
					VpcId: vpc.Id, VpcCidr: vpc.Cidr, Routes: c.Routes}
				if !c.StaticRoutesOnly {
					et.Bgp = &pb.EdgeTunnelBgp{LocalAsn: vgw.AmazonSideAsn, PeerAsn: cgw.BgpAsn}
					// What either tunnel's session learned: the site may
					// answer over a tunnel whose session is down.
					pr := new(pb.PropagatedRoutes)
					if _, _, err := s.getProto(ctx, s.propKey(c.VpnGatewayId, c.Id), pr); err != nil {
						return nil, err
					}
					et.Routes = pr.Prefixes
				}
				out = append(out, et)
			}
		}
	}
	slices.SortFunc(out, func(a, b *pb.EdgeTunnel) int {
		if c := strings.Compare(a.VpnConnectionId, b.VpnConnectionId); c != 0 {
			return c
		}
		return int(a.Tunnel) - int(b.Tunnel)
	})
	return out, nil
}
