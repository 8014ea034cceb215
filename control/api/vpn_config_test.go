package api

import (
	"errors"
	"os"
	"strings"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/test/frr"
)

func bgpVPN() (*pb.VpnConnection, *pb.CustomerGateway, *pb.VpnGateway, *pb.Vpc) {
	c := &pb.VpnConnection{Id: "vpn-0123456789abcdef0", Tunnels: []*pb.VpnTunnel{
		{OutsideAddress: "198.51.100.1", InsideCidr: "169.254.10.0/30", PreSharedKey: "first.key_1", DpdTimeoutSeconds: 30},
		{OutsideAddress: "198.51.100.2", InsideCidr: "169.254.11.4/30", PreSharedKey: "second.key_2", DpdTimeoutSeconds: 30}}}
	return c, &pb.CustomerGateway{Id: "cgw-1", IpAddress: "203.0.113.7", BgpAsn: 65010},
		&pb.VpnGateway{Id: "vgw-1", AmazonSideAsn: 64512, VpcId: "vpc-1"}, &pb.Vpc{Id: "vpc-1", Cidr: "10.0.0.0/16"}
}

// TestVPNFRRConfig: the site's bgpd configuration has a neighbor per
// tunnel on openvpc's inside address, the ASNs, AWS's timers, no policy
// requirement, the prefixes given; a real bgpd loads it cleanly.
func TestVPNFRRConfig(t *testing.T) {
	c, cgw, vgw, vpc := bgpVPN()
	conf, err := VPNFRRConfig(c, cgw, vgw, vpc, []string{"192.168.0.0/16", "172.16.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"router bgp 65010",
		"no bgp ebgp-requires-policy",
		"no bgp network import-check",
		"neighbor 169.254.10.1 remote-as 64512",
		"neighbor 169.254.10.1 update-source 169.254.10.2",
		"neighbor 169.254.10.1 timers 10 30",
		"neighbor 169.254.11.5 remote-as 64512",
		"neighbor 169.254.11.5 update-source 169.254.11.6",
		"  network 192.168.0.0/16\n",
		"  network 172.16.0.0/12\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	placeholder, err := VPNFRRConfig(c, cgw, vgw, vpc, nil)
	if err != nil || !strings.Contains(placeholder, "! network 192.168.0.0/16") || strings.Contains(placeholder, "\n  network") {
		t.Fatalf("no prefixes given: want a commented placeholder, got %v\n%s", err, placeholder)
	}
	for _, bad := range [][]string{{"10.0.1.0/24"}, {"nonsense"}, {"192.168.0.1/16"}} {
		if _, err := VPNFRRConfig(c, cgw, vgw, vpc, bad); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("announce %v: %v, want invalid", bad, err)
		}
	}
	static := &pb.VpnConnection{Id: c.Id, StaticRoutesOnly: true, Tunnels: c.Tunnels}
	if _, err := VPNFRRConfig(static, cgw, vgw, vpc, nil); !errors.Is(err, model.ErrPrecondition) {
		t.Errorf("static connection: %v, want a precondition error", err)
	}
	// The strongSwan side of a BGP connection: the site's side any
	// prefix, openvpc's side its inside address and the VPC.
	sw, err := StrongSwanConfig(c, cgw, vgw, vpc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"local_ts = 0.0.0.0/0", "remote_ts = 169.254.10.1/32,10.0.0.0/16", "remote_ts = 169.254.11.5/32,10.0.0.0/16", "--format frr"} {
		if !strings.Contains(sw, want) {
			t.Errorf("strongSwan config lacks %q:\n%s", want, sw)
		}
	}
	if !frr.Available() {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but FRR (bgpd) is not installed")
		}
		t.Skip("needs FRR's bgpd to load the configuration")
	}
	for _, cf := range []string{conf, placeholder} {
		if err := frr.Check(cf); err != nil {
			t.Fatalf("bgpd refuses the configuration: %v\n%s", err, cf)
		}
	}
}
