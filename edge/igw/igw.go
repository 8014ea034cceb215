// Package igw is Blackfoot's internet gateway function: an instance's
// private address is translated 1:1 to its Elastic IP on the way to the
// internet, and back on the way in, statelessly (edge/nat), so any edge
// serving the function can carry any packet of any flow.
package igw

import (
	"fmt"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/nat"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Gateway is the internet gateway function on one edge: the edge's port to
// the internet, and the translation. It serves every internet gateway.
type Gateway struct {
	outside datapath.Port
}

// New returns the function with its port to the internet (nil in tests that
// drive the stories directly).
func New(outside datapath.Port) *Gateway { return &Gateway{outside: outside} }

// Kind is the route target kind the function serves.
func (g *Gateway) Kind() tables.TargetKind { return tables.TargetInternetGateway }

// Targets is nil: any edge translates for any internet gateway.
func (g *Gateway) Targets() []uint64 { return nil }

// Outside is the port to the internet.
func (g *Gateway) Outside() datapath.Port { return g.outside }

// FromVPC is the way out: the packet must be for the internet gateway of
// its VPC and for an address outside the VPC, and its source must have an
// Elastic IP; then the source is translated in place.
//
//	internet gateway → Elastic IP → translate and send out
func (g *Gateway) FromVPC(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) datapath.Verdict {
	vpc, ok := snap.VPC(vni)
	ok = ok && vpc.InternetGateway != 0 && vpc.InternetGateway == target && !vpc.CIDR.Contains(inner.Dst())
	if t != nil {
		t.Step("internet gateway", ok, explainGateway(snap, vni, target, inner))
	}
	if !ok {
		return datapath.NoRoute
	}
	pub, ok := snap.PublicIP(vni, inner.Src())
	if t != nil {
		if ok {
			t.Pass("Elastic IP", "%v has Elastic IP %v", inner.Src(), pub)
		} else {
			t.Fail("Elastic IP", "%v has no Elastic IP: it cannot reach the internet", inner.Src())
		}
	}
	if !ok {
		return datapath.NoPublicIP
	}
	private := inner.Src()
	nat.Outbound(inner, pub)
	if t != nil {
		t.Pass("translate and send out", "source %v → %v (checksums updated), out of the outside port to %v", private, inner.Src(), inner.Dst())
	}
	return datapath.Forwarded
}

// FromOutside is the way in: the destination must be an Elastic IP; it is
// translated in place to the instance's private address, in its VPC.
//
//	Elastic IP → translate
func (g *Gateway) FromOutside(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (vni uint32, v datapath.Verdict) {
	vni, private, ok := snap.ByPublicIP(pkt.Dst())
	if t != nil {
		if ok {
			t.Pass("Elastic IP", "%v is the Elastic IP of %v in VPC %d", pkt.Dst(), private, vni)
		} else {
			t.Fail("Elastic IP", "%v is no Elastic IP of this cloud", pkt.Dst())
		}
	}
	if !ok {
		return 0, datapath.NoMapping
	}
	nat.Inbound(pkt, private)
	return vni, datapath.Forwarded
}

func explainGateway(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4) string {
	vpc, ok := snap.VPC(vni)
	switch {
	case !ok || vpc.InternetGateway == 0:
		return fmt.Sprintf("VPC %d has no internet gateway", vni)
	case vpc.InternetGateway != target:
		return fmt.Sprintf("igw-%016x is not VPC %d's internet gateway (igw-%016x)", target, vni, vpc.InternetGateway)
	case vpc.CIDR.Contains(inner.Dst()):
		return fmt.Sprintf("%v is inside the VPC, not on the internet", inner.Dst())
	}
	return fmt.Sprintf("VPC %d has igw-%016x", vni, vpc.InternetGateway)
}
