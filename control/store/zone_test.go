package store

import (
	"slices"
	"sync"
	"testing"

	"github.com/openvpc/openvpc/model"
)

// TestZoneLifecycle: a private hosted zone is created with its VPCs,
// associated and disassociated, given records of every type (validated
// with what to fix), read by name or id, and deleted; every mutation
// returns the revision that wrote it.
func TestZoneLifecycle(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	blue, err := f.s.CreateVPC(c, "blue", mustPrefix("10.1.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	z, rev, err := f.s.CreateZone(c, "Corp.Example.", []string{"red"})
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindZone, z.Id) || z.Name != "corp.example" || !slices.Equal(z.VpcIds, []string{f.vpc.Id}) || rev == 0 {
		t.Fatalf("zone %v at %d", z, rev)
	}
	for _, ref := range []string{"corp.example", "corp.example.", z.Id} {
		if got, err := f.s.GetZone(c, ref); err != nil || got.Id != z.Id {
			t.Fatalf("GetZone(%q) = %v, %v", ref, got, err)
		}
	}
	_, _, err = f.s.CreateZone(c, "corp.example", []string{"red"})
	wantKind(t, err, model.ErrExists, "corp.example")
	_, _, err = f.s.CreateZone(c, "other.example", nil)
	wantKind(t, err, model.ErrInvalid, "--vpc")
	_, _, err = f.s.CreateZone(c, "bad..name", []string{"red"})
	wantKind(t, err, model.ErrInvalid, "not a domain name")
	_, _, err = f.s.CreateZone(c, "example", []string{"red"})
	wantKind(t, err, model.ErrInvalid, "top-level")
	_, _, err = f.s.CreateZone(c, "other.example", []string{"green"})
	wantKind(t, err, model.ErrNotFound, "green")

	z, rev2, err := f.s.AssociateZone(c, "corp.example", "blue")
	if err != nil || rev2 <= rev || !slices.Equal(z.VpcIds, sorted(f.vpc.Id, blue.Id)) {
		t.Fatalf("associate: %v at %d, %v", z, rev2, err)
	}
	_, _, err = f.s.AssociateZone(c, "corp.example", "blue")
	wantKind(t, err, model.ErrExists, "already associated")

	for _, r := range []ZoneRecordSpec{
		{Name: "www", Type: "a", Value: "10.0.1.4"},
		{Name: "www", Type: "A", Value: "10.0.1.5", TTL: 60},
		{Name: "v6.corp.example.", Type: "AAAA", Value: "fd00::4"},
		{Name: "alias", Type: "CNAME", Value: "www.corp.example."},
		{Name: "@", Type: "TXT", Value: "v=spf1 -all"},
		{Name: "_pg._tcp", Type: "SRV", Value: "10 5 5432 db.corp.example"},
	} {
		if z, _, err = f.s.AddZoneRecord(c, z.Id, r); err != nil {
			t.Fatalf("add %v: %v", r, err)
		}
	}
	want := []string{
		"_pg._tcp.corp.example SRV 300 10 5 5432 db.corp.example",
		"alias.corp.example CNAME 300 www.corp.example",
		"corp.example TXT 300 v=spf1 -all",
		"v6.corp.example AAAA 300 fd00::4",
		"www.corp.example A 300 10.0.1.4",
		"www.corp.example A 60 10.0.1.5",
	}
	var got []string
	for _, r := range z.Records {
		got = append(got, r.Name+" "+r.Type+" "+itoa(r.Ttl)+" "+r.Value)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("records\n%q\nwant\n%q", got, want)
	}
	for _, tc := range []struct {
		spec  ZoneRecordSpec
		kind  error
		parts []string
	}{
		{ZoneRecordSpec{Name: "x", Type: "MX", Value: "10 mx"}, model.ErrInvalid, []string{"MX", "A, AAAA, CNAME, TXT or SRV"}},
		{ZoneRecordSpec{Name: "x", Type: "A", Value: "10.0.1"}, model.ErrInvalid, []string{"not an IPv4 address"}},
		{ZoneRecordSpec{Name: "x", Type: "A", Value: "fd00::1"}, model.ErrInvalid, []string{"not an IPv4 address"}},
		{ZoneRecordSpec{Name: "x", Type: "AAAA", Value: "10.0.0.1"}, model.ErrInvalid, []string{"not an IPv6 address"}},
		{ZoneRecordSpec{Name: "x", Type: "SRV", Value: "10 5 db"}, model.ErrInvalid, []string{"priority weight port target"}},
		{ZoneRecordSpec{Name: "x", Type: "SRV", Value: "10 5 70000 db"}, model.ErrInvalid, []string{"port", "0–65535"}},
		{ZoneRecordSpec{Name: "x", Type: "A"}, model.ErrInvalid, []string{"--value"}},
		{ZoneRecordSpec{Name: "www.elsewhere.", Type: "A", Value: "10.0.0.1"}, model.ErrInvalid, []string{"outside zone corp.example"}},
		{ZoneRecordSpec{Name: "www", Type: "A", Value: "10.0.1.4"}, model.ErrExists, []string{"already has"}},
		{ZoneRecordSpec{Name: "www", Type: "CNAME", Value: "alias"}, model.ErrPrecondition, []string{"cannot share its name"}},
		{ZoneRecordSpec{Name: "alias", Type: "A", Value: "10.0.0.1"}, model.ErrPrecondition, []string{"cannot share its name"}},
	} {
		_, _, err := f.s.AddZoneRecord(c, "corp.example", tc.spec)
		wantKind(t, err, tc.kind, tc.parts...)
	}

	if z, _, err = f.s.DeleteZoneRecord(c, "corp.example", "www", "A"); err != nil || len(z.Records) != 4 {
		t.Fatalf("delete record: %v, %v", z, err)
	}
	_, _, err = f.s.DeleteZoneRecord(c, "corp.example", "www", "A")
	wantKind(t, err, model.ErrNotFound, "no A record named www.corp.example")

	if zs, err := f.s.ListZones(c, blue.Id); err != nil || len(zs) != 1 {
		t.Fatalf("zones of blue: %v, %v", zs, err)
	}
	if z, _, err = f.s.DisassociateZone(c, "corp.example", "blue"); err != nil || !slices.Equal(z.VpcIds, []string{f.vpc.Id}) {
		t.Fatalf("disassociate: %v, %v", z, err)
	}
	if zs, err := f.s.ListZones(c, blue.Id); err != nil || len(zs) != 0 {
		t.Fatalf("zones of blue after disassociate: %v, %v", zs, err)
	}
	_, _, err = f.s.DisassociateZone(c, "corp.example", "red")
	wantKind(t, err, model.ErrPrecondition, "last association", "delete the zone")

	old, _, err := f.s.DeleteZone(c, "corp.example")
	if err != nil || old.Id != z.Id {
		t.Fatalf("delete: %v, %v", old, err)
	}
	_, err = f.s.GetZone(c, z.Id)
	wantKind(t, err, model.ErrNotFound)
	if _, _, err := f.s.CreateZone(c, "corp.example", []string{"red"}); err != nil {
		t.Fatalf("the name is free again: %v", err)
	}
}

// TestZoneConcurrentRecords: records added at once all land — each
// mutation is one transaction guarded by the zone's revision, retried.
func TestZoneConcurrentRecords(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	if _, _, err := f.s.CreateZone(c, "corp.example", []string{"red"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := f.s.AddZoneRecord(c, "corp.example", ZoneRecordSpec{Name: "h" + itoa(uint32(i)), Type: "A", Value: "10.0.0." + itoa(uint32(i+1))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	z, err := f.s.GetZone(c, "corp.example")
	if err != nil || len(z.Records) != 8 {
		t.Fatalf("after concurrent adds: %v, %v", z, err)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
