package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// fwFlow is what the firewall steps read of a packet.
type fwFlow struct {
	tables.Flow
	tcpFlags uint8
	quoted   []byte // an ICMP error's quoted header and ports
}

// tcpFIN and tcpRST end a TCP flow: it is kept only a little longer.
const (
	tcpFIN = 0x01
	tcpRST = 0x04
)

// ttl is how long a flow of f stays tracked after this packet.
func (tm *Timeouts) ttl(f *fwFlow, seen bool) uint32 {
	switch f.Proto {
	case packet.ProtoTCP:
		if f.tcpFlags&(tcpFIN|tcpRST) != 0 {
			return min(tcpClosing, tm.TCPEstablished)
		}
		return tm.TCPEstablished
	case packet.ProtoUDP:
		if seen {
			return tm.UDPStream // a flow with traffic both ways
		}
		return tm.UDP
	}
	return tm.Other
}

// flowKey is the conntrack key of a packet at ENI eni (its source when
// outbound, its destination when not): the flow as the ENI sees it. An ICMP error belongs to the flow
// of the packet it quotes (which went the other way).
func flowKey(eni uint64, pkt packet.IPv4, f *fwFlow, outbound bool) ctKey {
	if q := f.quoted; q != nil {
		ihl := int(q[0]&0xf) * 4
		src, dst := binary.BigEndian.Uint32(q[12:16]), binary.BigEndian.Uint32(q[16:20])
		sp, dp := binary.BigEndian.Uint16(q[ihl:]), binary.BigEndian.Uint16(q[ihl+2:])
		if q[9] == packet.ProtoICMP {
			// An echo's identifier is both its ports (flowOf does the same).
			sp = 0
			if len(q) >= ihl+6 {
				sp = binary.BigEndian.Uint16(q[ihl+4:])
			}
			dp = sp
		}
		if outbound { // this ENI reports on a packet it received: remote → local
			return newCtKey(eni, dst, src, dp, sp, q[9])
		}
		return newCtKey(eni, src, dst, sp, dp, q[9]) // about a packet it sent
	}
	src, dst := binary.BigEndian.Uint32(pkt[12:16]), binary.BigEndian.Uint32(pkt[16:20])
	if outbound {
		return newCtKey(eni, src, dst, f.SrcPort, f.DstPort, f.Proto)
	}
	return newCtKey(eni, dst, src, f.DstPort, f.SrcPort, f.Proto)
}

// securityGroups is the step where the groups of the ENI at one end of the
// packet decide (egress: the sender's, for the destination; ingress: the
// receiver's, for the source). A flow they allowed before, either way,
// passes as tracked; a new one needs a rule and is tracked from then on —
// unless the groups allow everything both ways, which is re-checked per
// packet. eni and self are the ENI and its mapping (nil: looked up when
// needed) and tm its timeouts; peer, peerMap and peerVNI the other end (an empty mapping for
// the internet). Only a new flow pays for the lookups.
func (p *Plane) securityGroups(snap *tables.Snapshot, vpc *tables.VPC, eni uint64, local netip.Addr, self *tables.Mapping, tm *Timeouts, pkt packet.IPv4, f *fwFlow, egress bool,
	peer netip.Addr, peerMap *tables.Mapping, peerVNI uint32, t *datapath.Trace) datapath.Verdict {
	if !vpc.Filtered() {
		if t != nil {
			t.Pass("security groups", "VPC %d has no security groups", vpc.VNI)
		}
		return datapath.Forwarded
	}
	now := p.clock.Load()
	key := flowKey(eni, pkt, f, egress)
	if p.conntrack.Lookup(key, now, tm.ttl(f, true)) {
		if t != nil {
			t.Pass("security groups", "a tracked flow of eni-%016x: allowed as the reply or continuation of one a rule let through", eni)
		}
		return datapath.Forwarded
	}
	var own tables.Mapping
	if self == nil {
		if !snap.Lookup(vpc.VNI, local, &own) {
			return datapath.SGDenied // an ENI the cache does not know has no groups to allow anything
		}
		self = &own
	}
	groups := vpc.GroupsOf(self)
	// The peer's groups, for rules naming a group: an ENI's own, or its
	// VPC's default; none for the internet.
	peerGroups := peerMap.Groups
	if len(peerGroups) == 0 && peerMap.ENI != 0 {
		if pv, ok := snap.VPC(peerVNI); ok {
			peerGroups = pv.GroupsOf(peerMap)
		}
	}
	if f.quoted != nil {
		// An ICMP error about no flow we track is not allowed by port rules.
		f.Flow = tables.Flow{Proto: f.Proto, Type: f.Type, Code: f.Code}
	}
	sg, rule, ok := vpc.Allow(groups, !egress, &f.Flow, peer, peerGroups)
	if !ok {
		if t != nil {
			t.Fail("security groups", "no rule of %s allows %s %s %v: dropped", groupNames(groups), dirWord(egress), protoWord(&f.Flow), peer)
		}
		return datapath.SGDenied
	}
	if vpc.Untracked(groups, f.Proto) {
		if t != nil {
			t.Pass("security groups", "allowed by sgr-%016x of sg-%016x; open to all both ways, so not tracked", rule, sg)
		}
		return datapath.Forwarded
	}
	if p.explaining {
		if t != nil {
			t.Pass("security groups", "allowed by sgr-%016x of sg-%016x; a packet sent would be tracked", rule, sg)
		}
		return datapath.Forwarded
	}
	if !p.conntrack.Insert(key, now, tm.ttl(f, false)) {
		if t != nil {
			t.Fail("security groups", "allowed by sgr-%016x of sg-%016x, but the connection-tracking table is full", rule, sg)
		}
		return datapath.ConntrackFull
	}
	if t != nil {
		t.Pass("security groups", "allowed by sgr-%016x of sg-%016x; tracked from now on", rule, sg)
	}
	return datapath.Forwarded
}

// networkACL is the step where the ACL of the subnet at one end decides
// (outbound: the sender's subnet, for the destination; inbound: the
// receiver's, for the source). Stateless: every packet, both ways. Traffic
// that stays inside one subnet meets no ACL, as on AWS.
func networkACL(vpc *tables.VPC, local netip.Addr, f *fwFlow, inbound bool, peer netip.Addr, t *datapath.Trace) datapath.Verdict {
	acl := vpc.ACL(local, peer)
	if acl == nil {
		if t != nil {
			t.Pass("network ACL", "no ACL between %v and %v", local, peer)
		}
		return datapath.Forwarded
	}
	n, ok := acl.Decide(inbound, &f.Flow, peer)
	if t != nil {
		switch {
		case ok:
			t.Pass("network ACL", "rule %d of acl-%016x allows it", n, acl.ID)
		case n == 0:
			t.Fail("network ACL", "no rule of acl-%016x matches %s %s %v: denied by the final rule (*)", acl.ID, dirWord(!inbound), protoWord(&f.Flow), peer)
		default:
			t.Fail("network ACL", "rule %d of acl-%016x denies it", n, acl.ID)
		}
	}
	if !ok {
		return datapath.ACLDenied
	}
	return datapath.Forwarded
}

func dirWord(egress bool) string {
	if egress {
		return "to"
	}
	return "from"
}

func protoWord(f *tables.Flow) string {
	switch f.Proto {
	case packet.ProtoTCP:
		return fmt.Sprintf("tcp port %d", f.DstPort)
	case packet.ProtoUDP:
		return fmt.Sprintf("udp port %d", f.DstPort)
	case packet.ProtoICMP:
		return fmt.Sprintf("icmp type %d code %d", f.Type, f.Code)
	}
	return fmt.Sprintf("protocol %d", f.Proto)
}

func groupNames(groups []uint64) string {
	s := ""
	for i, g := range groups {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("sg-%016x", g)
	}
	if s == "" {
		return "no group"
	}
	return s
}
