package main

import (
	"strings"
	"testing"
)

type zoneRecordJ struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	TTL   uint32 `json:"ttl"`
	Value string `json:"value"`
}

type zoneJ struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	VpcIDs  []string      `json:"vpcIds"`
	Records []zoneRecordJ `json:"records"`
}

// TestZonesCLI drives private hosted zones through the binary: create
// with VPCs, get by name or id, associate, records of each type, every
// refusal with its code and what to fix, --wait that names the host that
// has not acknowledged, disassociate, record delete, zone delete.
func TestZonesCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "blue", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	red := okJSON[vpcDefaultsJ](t, s, "vpc", "get", "red")
	blue := okJSON[vpcDefaultsJ](t, s, "vpc", "get", "blue")

	// No host in scope yet: --wait returns at once.
	z := okJSON[zoneJ](t, s, "zone", "create", "--name", "corp.example", "--vpc", "red", "--wait")
	if !strings.HasPrefix(z.ID, "zone-") || z.Name != "corp.example" || len(z.VpcIDs) != 1 || z.VpcIDs[0] != red.ID {
		t.Fatalf("zone create = %+v", z)
	}
	for _, ref := range []string{"corp.example", "corp.example.", z.ID} {
		if got := okJSON[zoneJ](t, s, "zone", "get", ref); got.ID != z.ID {
			t.Errorf("zone get %s = %+v", ref, got)
		}
	}
	if got := okJSON[zoneJ](t, s, "zone", "associate", "corp.example", "--vpc", "blue"); len(got.VpcIDs) != 2 {
		t.Fatalf("zone associate = %+v", got)
	}
	s.ok(t, "zone", "record", "add", "corp.example", "--name", "www", "--type", "A", "--value", "10.0.1.5", "--wait")
	s.ok(t, "zone", "record", "add", "corp.example", "--name", "alias", "--type", "cname", "--value", "www.corp.example")
	got := okJSON[zoneJ](t, s, "zone", "record", "add", "corp.example", "--name", "_pg._tcp", "--type", "SRV", "--value", "10 5 5432 db.corp.example", "--ttl", "60")
	if len(got.Records) != 3 || got.Records[0] != (zoneRecordJ{"_pg._tcp.corp.example", "SRV", 60, "10 5 5432 db.corp.example"}) {
		t.Fatalf("records = %+v", got.Records)
	}
	out := s.ok(t, "zone", "get", "corp.example")
	vpcs := red.ID + "," + blue.ID // the table lists them in id order
	if blue.ID < red.ID {
		vpcs = blue.ID + "," + red.ID
	}
	for _, want := range []string{"ID", "VPCS", "RECORDS", z.ID, vpcs, "www.corp.example", "CNAME", "300", "10.0.1.5"} {
		if !strings.Contains(out, want) {
			t.Errorf("zone get table lacks %q:\n%s", want, out)
		}
	}
	if l := okJSON[[]zoneJ](t, s, "zone", "list", "--vpc", "blue"); len(l) != 1 {
		t.Errorf("zone list --vpc blue: %+v", l)
	}

	for _, c := range []struct {
		code  string
		wants []string
		args  []string
	}{
		{"invalid_argument", []string{"not a domain name", "corp.example"}, []string{"zone", "create", "--name", "bad..name", "--vpc", "red"}},
		{"already_exists", []string{"corp.example"}, []string{"zone", "create", "--name", "corp.example", "--vpc", "red"}},
		{"not_found", []string{`"green"`}, []string{"zone", "create", "--name", "x.example", "--vpc", "green"}},
		{"", []string{"vpc"}, []string{"zone", "create", "--name", "x.example"}},
		{"invalid_argument", []string{"not an IPv4 address"}, []string{"zone", "record", "add", "corp.example", "--name", "x", "--type", "A", "--value", "nope"}},
		{"invalid_argument", []string{"priority weight port target"}, []string{"zone", "record", "add", "corp.example", "--name", "x", "--type", "SRV", "--value", "1 2 db"}},
		{"invalid_argument", []string{"A, AAAA, CNAME, TXT or SRV"}, []string{"zone", "record", "add", "corp.example", "--name", "x", "--type", "MX", "--value", "10 mx"}},
		{"failed_precondition", []string{"cannot share its name"}, []string{"zone", "record", "add", "corp.example", "--name", "alias", "--type", "A", "--value", "10.0.0.1"}},
		{"not_found", []string{"no TXT record"}, []string{"zone", "record", "delete", "corp.example", "--name", "www", "--type", "TXT"}},
		{"not_found", []string{"zone"}, []string{"zone", "get", "other.example"}},
	} {
		s.fail(t, c.code, c.wants, c.args...)
	}

	// An instance on host-a, which runs no agent: a change is not done
	// until host-a acknowledges it, and --wait says so.
	s.ok(t, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")
	s.fail(t, "deadline_exceeded", []string{"host-a", "acknowledged"}, "zone", "record", "add", "corp.example", "--name", "db", "--type", "A", "--value", "10.0.1.6", "--wait", "--timeout", "500ms")
	// The change itself is made.
	if got := okJSON[zoneJ](t, s, "zone", "get", "corp.example"); len(got.Records) != 4 {
		t.Errorf("after the timed-out wait: %+v", got.Records)
	}

	if got := okJSON[zoneJ](t, s, "zone", "disassociate", "corp.example", "--vpc", "blue"); len(got.VpcIDs) != 1 {
		t.Fatalf("zone disassociate = %+v", got)
	}
	s.fail(t, "failed_precondition", []string{"last association", "delete the zone"}, "zone", "disassociate", "corp.example", "--vpc", "red")
	if got := okJSON[zoneJ](t, s, "zone", "record", "delete", "corp.example", "--name", "www", "--type", "A"); len(got.Records) != 3 {
		t.Fatalf("record delete = %+v", got.Records)
	}
	if out := s.ok(t, "zone", "delete", "corp.example"); !strings.Contains(out, "deleted zone corp.example") {
		t.Errorf("zone delete said %q", out)
	}
	if l := okJSON[[]zoneJ](t, s, "zone", "list"); len(l) != 0 {
		t.Errorf("zones left: %+v", l)
	}
}
