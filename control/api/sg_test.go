package api

import (
	"errors"
	"net/netip"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// FuzzRuleSpec: whatever a client sends as a rule, the API edge refuses
// it as invalid input or hands the store a rule whose match is valid and
// whose CIDR, if any, is canonical; it never panics.
func FuzzRuleSpec(f *testing.F) {
	f.Add(false, "tcp", "80", int32(-2), int32(-2), "0.0.0.0/0", "", "")
	f.Add(true, "icmp", "", int32(3), int32(4), "", "web", "")
	f.Add(false, "all", "", int32(-2), int32(-2), "10.1.2.3/8", "red/default", "pl-0123456789abcdef")
	f.Fuzz(func(t *testing.T, egress bool, proto, port string, typ, code int32, cidr, group, pl string) {
		m := &pb.RuleMatch{Protocol: proto, Port: port}
		if typ != -2 {
			m.IcmpType = &typ
		}
		if code != -2 {
			m.IcmpCode = &code
		}
		spec, err := ruleSpec(&pb.SecurityGroupRuleSpec{Egress: egress, Match: m, Cidr: cidr, Group: group, PrefixList: pl})
		if err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if err := spec.Match.Check(); err != nil {
			t.Fatalf("match %+v passed the edge but fails Check: %v", spec.Match, err)
		}
		if spec.CIDR != "" {
			p, err := netip.ParsePrefix(spec.CIDR)
			if err != nil || p.String() != spec.CIDR || p.Masked() != p || !p.Addr().Is4() {
				t.Fatalf("CIDR %q passed the edge but is not canonical IPv4", spec.CIDR)
			}
		}
		if spec.Egress != egress || spec.Group != group || spec.PrefixList != pl {
			t.Fatalf("spec %+v does not carry what was sent", spec)
		}
	})
}
