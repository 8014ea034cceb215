package services

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/host/tables"
)

// zoneRR renders each record type, and refuses values that do not parse
// rather than answering garbage.
func TestZoneRR(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'x'
	}
	for _, tc := range []struct {
		r    tables.ZoneRecord
		want string // "" for nil
	}{
		{tables.ZoneRecord{Type: "A", TTL: 5, Value: "10.0.0.1"}, "w.z.\t5\tIN\tA\t10.0.0.1"},
		{tables.ZoneRecord{Type: "A", TTL: 5, Value: "fd00::1"}, ""},
		{tables.ZoneRecord{Type: "AAAA", TTL: 5, Value: "fd00::1"}, "w.z.\t5\tIN\tAAAA\tfd00::1"},
		{tables.ZoneRecord{Type: "CNAME", TTL: 5, Value: "x.z"}, "w.z.\t5\tIN\tCNAME\tx.z."},
		{tables.ZoneRecord{Type: "SRV", TTL: 5, Value: "1 2 3 t.z"}, "w.z.\t5\tIN\tSRV\t1 2 3 t.z."},
		{tables.ZoneRecord{Type: "SRV", TTL: 5, Value: "1 2 t.z"}, ""},
		{tables.ZoneRecord{Type: "SRV", TTL: 5, Value: "1 2 99999 t.z"}, ""},
		{tables.ZoneRecord{Type: "MX", TTL: 5, Value: "10 m"}, ""},
	} {
		rr := zoneRR("w.z.", tc.r)
		switch {
		case tc.want == "" && rr != nil:
			t.Errorf("%v → %v, want nothing", tc.r, rr)
		case tc.want != "" && (rr == nil || rr.String() != tc.want):
			t.Errorf("%v → %v, want %q", tc.r, rr, tc.want)
		}
	}
	txt := zoneRR("w.z.", tables.ZoneRecord{Type: "TXT", Value: string(long)}).(*dns.TXT)
	if len(txt.Txt) != 3 || len(txt.Txt[0]) != 255 || len(txt.Txt[2]) != 90 {
		t.Errorf("a 600-byte TXT split into %d strings", len(txt.Txt))
	}
}

// ZoneOf picks the most specific zone; Contains is label-aligned.
func TestZoneOf(t *testing.T) {
	outer := tables.NewZone(1, "corp.example.", nil)
	inner := tables.NewZone(2, "dev.corp.example.", nil)
	v := &tables.VPC{Zones: []*tables.Zone{outer, inner}}
	for name, want := range map[string]*tables.Zone{
		"corp.example.": outer, "www.corp.example.": outer, "dev.corp.example.": inner,
		"a.dev.corp.example.": inner, "xcorp.example.": nil, "example.": nil,
	} {
		if got := v.ZoneOf(name); got != want {
			t.Errorf("ZoneOf(%q) = %v, want %v", name, got, want)
		}
	}
}
