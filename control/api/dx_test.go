package api

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/test/frr"
)

func goodVIF() *pb.CreateVirtualInterfaceRequest {
	return &pb.CreateVirtualInterfaceRequest{
		Name: "dc1", Connection: "dxcon-0123456789abcdef", Vlan: 101, CustomerAsn: 65000,
		VpnGateway: "vgw-0123456789abcdef",
	}
}

func TestVIFSpec(t *testing.T) {
	v, err := vifSpec(goodVIF())
	if err != nil {
		t.Fatal(err)
	}
	a, c := netip.MustParsePrefix(v.AmazonAddress), netip.MustParsePrefix(v.CustomerAddress)
	if err := model.ValidatePeerAddresses(a, c); err != nil {
		t.Errorf("allocated addresses: %v", err)
	}
	if model.ValidateAuthKey(v.AuthKey) != nil || v.HoldTime != 90 || !model.IsID(model.KindDirectConnect, v.Id) {
		t.Errorf("defaults not filled in: %+v", v)
	}
	for name, tc := range map[string]struct {
		mod  func(*pb.CreateVirtualInterfaceRequest)
		want string
	}{
		"vlan 0":        {func(m *pb.CreateVirtualInterfaceRequest) { m.Vlan = 0 }, "1–4094"},
		"vlan 4095":     {func(m *pb.CreateVirtualInterfaceRequest) { m.Vlan = 4095 }, "1–4094"},
		"as_trans":      {func(m *pb.CreateVirtualInterfaceRequest) { m.CustomerAsn = 23456 }, "AS_TRANS"},
		"public amazon": {func(m *pb.CreateVirtualInterfaceRequest) { m.AmazonAsn = 7224 }, "private ASN"},
		"two gateways":  {func(m *pb.CreateVirtualInterfaceRequest) { m.DxGateway = "dxgw-0123456789abcdef" }, "one gateway"},
		"no gateway":    {func(m *pb.CreateVirtualInterfaceRequest) { m.VpnGateway = "" }, "one gateway"},
		"bad vgw":       {func(m *pb.CreateVirtualInterfaceRequest) { m.VpnGateway = "no such/name" }, "virtual private gateway"},
		"one address":   {func(m *pb.CreateVirtualInterfaceRequest) { m.AmazonAddress = "169.254.1.1/30" }, "both"},
		"not link-local": {func(m *pb.CreateVirtualInterfaceRequest) {
			m.AmazonAddress, m.CustomerAddress = "10.0.0.1/30", "10.0.0.2/30"
		}, "169.254.0.0/16"},
		"short key":      {func(m *pb.CreateVirtualInterfaceRequest) { m.AuthKey = "abc" }, "6–80"},
		"hold 2":         {func(m *pb.CreateVirtualInterfaceRequest) { m.HoldTime = 2 }, "3–65535"},
		"bad connection": {func(m *pb.CreateVirtualInterfaceRequest) { m.Connection = "" }, "connection"},
	} {
		m := goodVIF()
		tc.mod(m)
		_, err := vifSpec(m)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s: err %v, want an invalid-argument error saying %q", name, err, tc.want)
		}
	}
}

// FuzzVIFSpec: whatever a client sends, the API edge refuses it as
// invalid input or hands the store a VIF whose every field is valid.
func FuzzVIFSpec(f *testing.F) {
	f.Add("dc1", "dxcon-0123456789abcdef", uint32(101), uint32(65000), uint32(0), "", "", "", "vgw-0123456789abcdef", "", uint32(0))
	f.Add("", "x", uint32(4095), uint32(0), uint32(7224), "169.254.1.1/30", "169.254.1.2/30", "k e y", "", "dxgw-0123456789abcdef", uint32(2))
	f.Fuzz(func(t *testing.T, name, con string, vlan, casn, aasn uint32, aaddr, caddr, key, vgw, dxgw string, hold uint32) {
		m := &pb.CreateVirtualInterfaceRequest{Name: name, Connection: con, Vlan: vlan, CustomerAsn: casn, AmazonAsn: aasn,
			AmazonAddress: aaddr, CustomerAddress: caddr, AuthKey: key, VpnGateway: vgw, DxGateway: dxgw, HoldTime: hold}
		v, err := vifSpec(m)
		if err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if model.ValidateVLAN(v.Vlan) != nil || model.ValidateCustomerASN(v.CustomerAsn) != nil || model.ValidateAuthKey(v.AuthKey) != nil || v.HoldTime < 3 {
			t.Fatalf("invalid VIF passed: %+v", v)
		}
		a, err1 := netip.ParsePrefix(v.AmazonAddress)
		c, err2 := netip.ParsePrefix(v.CustomerAddress)
		if err1 != nil || err2 != nil || model.ValidatePeerAddresses(a, c) != nil {
			t.Fatalf("bad peer addresses passed: %q %q", v.AmazonAddress, v.CustomerAddress)
		}
		if (v.VpnGatewayId == "") == (v.DxGatewayId == "") {
			t.Fatalf("not exactly one gateway: %+v", v)
		}
	})
}

func TestFRRConfig(t *testing.T) {
	v, err := vifSpec(goodVIF())
	if err != nil {
		t.Fatal(err)
	}
	v.AmazonAsn = 64512
	conf, err := FRRConfig(v, "eth1", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParsePrefix(v.AmazonAddress).Addr().String()
	for _, want := range []string{
		"router bgp 65000",
		"neighbor " + a + " remote-as 64512",
		"neighbor " + a + " password " + v.AuthKey,
		"neighbor " + a + " timers 30 90",
		"network 192.0.2.0/24",
		"ip link add link eth1 name eth1.101 type vlan id 101",
		"ip address add " + v.CustomerAddress + " dev eth1.101",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	// A real bgpd loads it without a complaint.
	if !frr.Available() {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but FRR (bgpd) is not installed")
		}
		t.Skip("needs FRR's bgpd to load the configuration")
	}
	if err := frr.Check(conf); err != nil {
		t.Fatalf("bgpd refuses the configuration: %v\n%s", err, conf)
	}
	if err := frr.Check(conf + "router bgp 65000\n neighbor 169.254.1.1 frobnicate\n"); err == nil {
		t.Fatal("frr.Check passed a broken configuration: it cannot fail")
	}
}
