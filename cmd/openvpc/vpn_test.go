package main

import (
	"strings"
	"testing"
)

type vpnCLIJ struct {
	ID      string `json:"id"`
	Tunnels []struct {
		OutsideAddress string `json:"outsideAddress"`
		InsideCidr     string `json:"insideCidr"`
		PreSharedKey   string `json:"preSharedKey"`
		Status         struct {
			State  string `json:"state"`
			Detail string `json:"detail"`
		} `json:"status"`
	} `json:"tunnels"`
	Routes []string `json:"routes"`
}

// TestVPNCLI drives cgw, vgw, vpn and route-table propagation through the
// binary: creation with given and generated tunnel options, every refusal
// with its code and what to do, the config with the keys that get and
// list never show, static routes propagated into the route table (there
// inactive while no tunnel is up, saying why), and deletes in order.
func TestVPNCLI(t *testing.T) {
	s := startServer(t, t.TempDir(), "--vpn-pool", "198.51.100.64/29")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	red := okJSON[struct {
		MainRouteTableID string `json:"mainRouteTableId"`
	}](t, s, "vpc", "get", "red")

	s.fail(t, "invalid_argument", []string{"7224", "reserved"}, "cgw", "create", "--ip", "203.0.113.7", "--asn", "7224")
	s.fail(t, "invalid_argument", []string{"127.0.0.1", "public address"}, "cgw", "create", "--ip", "127.0.0.1")
	s.ok(t, "cgw", "create", "--name", "office", "--ip", "203.0.113.7")
	if out := s.ok(t, "cgw", "list"); !strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "65000") {
		t.Fatalf("cgw list:\n%s", out)
	}
	s.ok(t, "vgw", "create", "--name", "red-vgw")
	s.fail(t, "failed_precondition", []string{"not attached", "vgw attach"}, "route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	s.ok(t, "vgw", "attach", "red-vgw", "--vpc", "red")
	s.fail(t, "failed_precondition", []string{"detach it first"}, "vgw", "delete", "red-vgw")

	s.fail(t, "invalid_argument", []string{"169.254.0.0/30", "reserved"}, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw", "--inside-cidr", "169.254.0.0/30")
	s.fail(t, "invalid_argument", []string{"starts with '0'"}, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw", "--psk", "0abcdefgh")
	s.fail(t, "invalid_argument", []string{"position"}, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw", "--psk", "abc-defgh")
	v := okJSON[vpnCLIJ](t, s, "vpn", "create", "--name", "office-vpn", "--cgw", "office", "--vgw", "red-vgw", "--static-routes-only",
		"--inside-cidr", "169.254.10.0/30", "--psk", "first.key_1,second.key_2")
	if len(v.Tunnels) != 2 || v.Tunnels[0].InsideCidr != "169.254.10.0/30" || v.Tunnels[1].InsideCidr == "" || v.Tunnels[0].PreSharedKey != "" ||
		!strings.HasPrefix(v.Tunnels[0].OutsideAddress, "198.51.100.") || v.Tunnels[0].Status.State != "down" || !strings.Contains(v.Tunnels[0].Status.Detail, "no edge serves VPN") {
		t.Fatalf("vpn create = %+v", v)
	}
	for _, args := range [][]string{{"vpn", "get", "office-vpn"}, {"vpn", "list"}, {"-o", "json", "vpn", "list"}} {
		if out := s.ok(t, args...); strings.Contains(out, "first.key_1") || strings.Contains(out, "second.key_2") {
			t.Fatalf("%v shows a key:\n%s", args, out)
		}
	}
	conf := s.ok(t, "vpn", "config", "office-vpn")
	for _, want := range []string{`secret = "first.key_1"`, `secret = "second.key_2"`, "remote_ts = 10.0.0.0/16", v.ID + "-tunnel2", "dpd_delay = 10s"} {
		if !strings.Contains(conf, want) {
			t.Fatalf("config lacks %q:\n%s", want, conf)
		}
	}
	s.fail(t, "invalid_argument", []string{"strongswan"}, "vpn", "config", "office-vpn", "--format", "cisco")

	s.fail(t, "invalid_argument", []string{"0.0.0.0/0"}, "vpn", "route", "add", "office-vpn", "--dest", "0.0.0.0/0")
	s.ok(t, "vpn", "route", "add", "office-vpn", "--dest", "192.168.50.0/24")
	s.fail(t, "already_exists", []string{"already has route"}, "vpn", "route", "add", "office-vpn", "--dest", "192.168.50.0/24")
	s.ok(t, "route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	out := s.ok(t, "route-table", "get", red.MainRouteTableID)
	for _, want := range []string{"192.168.50.0/24→" + v.ID + "(vpn-static)(inactive: no tunnel of " + v.ID + " is up)", "propagating from"} {
		if !strings.Contains(out, want) {
			t.Fatalf("route-table get lacks %q:\n%s", want, out)
		}
	}
	s.fail(t, "invalid_argument", []string{"propagation enable"}, "route", "create", "--vpc", "red", "--dest", "192.168.0.0/16", "--target", v.ID)
	// A BGP connection takes no static routes; the pool (6 addresses) is full after 3 connections.
	bgp := okJSON[vpnCLIJ](t, s, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw")
	s.fail(t, "failed_precondition", []string{"BGP", "--static-routes-only"}, "vpn", "route", "add", bgp.ID, "--dest", "192.168.60.0/24")
	s.ok(t, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw")
	s.fail(t, "failed_precondition", []string{"VPN pools"}, "vpn", "create", "--cgw", "office", "--vgw", "red-vgw")

	s.ok(t, "vgw", "detach", "red-vgw")
	s.fail(t, "failed_precondition", []string{"connections", "vpn delete"}, "vgw", "delete", "red-vgw")
	s.fail(t, "failed_precondition", []string{"used by", "vpn delete"}, "cgw", "delete", "office")
	for _, c := range okJSON[[]vpnCLIJ](t, s, "vpn", "list") {
		s.ok(t, "vpn", "delete", c.ID)
	}
	s.ok(t, "vgw", "delete", "red-vgw")
	s.ok(t, "cgw", "delete", "office")
}
