package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseCIDR(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "10.0.0.0/16", want: "10.0.0.0/16"},
		{in: " 10.0.0.0/28 ", want: "10.0.0.0/28"},
		{in: "10.0.0.1/16", err: "did you mean 10.0.0.0/16"},
		{in: "10.0.0.0/8", err: "between /16 and /28"},
		{in: "10.0.0.0/29", err: "between /16 and /28"},
		{in: "fd00::/64", err: "not IPv4"},
		{in: "10.0.0.0", err: "not a CIDR"},
		{in: "", err: "not a CIDR"},
	} {
		p, err := ParseCIDR("VPC CIDR", tc.in, MinPrefixLen, MaxPrefixLen)
		if tc.err != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCIDR(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("ParseCIDR(%q) = %v, %v", tc.in, p, err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"red", "red-1", "a.b_c", "R2D2", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName(KindVPC, ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-red", "red space", "rød", strings.Repeat("x", MaxNameLen+1), "vpc-0123456789abcdef"} {
		if err := ValidateName(KindVPC, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want invalid", bad, err)
		}
	}
	// An id of another kind is a fine name.
	if err := ValidateName(KindSubnet, "vpc-0123456789abcdef"); err != nil {
		t.Error(err)
	}
}

func TestIDs(t *testing.T) {
	id := NewID(KindInstance)
	n, ok := ParseID(KindInstance, id)
	if !ok || FormatID(KindInstance, n) != id || len(id) != len("i-")+16 {
		t.Fatalf("id %q round trip: %d %v", id, n, ok)
	}
	for _, bad := range []string{"i-0123", "i-0123456789ABCDEF", "vpc-0123456789abcdef", "i-0123456789abcdeg"} {
		if IsID(KindInstance, bad) {
			t.Errorf("IsID(%q) = true", bad)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewID(KindVPC)
		if seen[id] {
			t.Fatalf("id %s drawn twice", id)
		}
		seen[id] = true
	}
}

func TestSubnetAddresses(t *testing.T) {
	p := netip.MustParsePrefix("10.0.1.0/24")
	if g := Gateway(p); g.String() != "10.0.1.1" {
		t.Errorf("gateway %s", g)
	}
	first, last := UsableRange(p)
	if first.String() != "10.0.1.4" || last.String() != "10.0.1.254" {
		t.Errorf("usable %s–%s", first, last)
	}
	for ip, ok := range map[string]bool{"10.0.1.4": true, "10.0.1.254": true, "10.0.1.3": false, "10.0.1.255": false, "10.0.2.4": false} {
		if err := CheckUsable(p, netip.MustParseAddr(ip)); (err == nil) != ok {
			t.Errorf("CheckUsable(%s) = %v", ip, err)
		}
	}
	if m := MAC(0x0a0b0c, netip.MustParseAddr("10.0.1.4")); m != "02:0a:0b:0c:01:04" {
		t.Errorf("mac %s", m)
	}
}

// FuzzArguments feeds arbitrary text to every argument validator: none may
// panic, errors are always ErrInvalid, and what is accepted is canonical.
func FuzzArguments(f *testing.F) {
	for _, s := range []string{"10.0.0.0/16", "10.0.0.1/16", "red", "vpc-0123456789abcdef", "::1/128", "1.2.3.4", "", "a/b/c", "0.0.0.0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParseCIDR("CIDR", s, 0, 32); err == nil {
			if !p.Addr().Is4() || p.Masked() != p {
				t.Fatalf("accepted non-canonical %q as %v", s, p)
			}
			if q, err := ParseCIDR("CIDR", p.String(), 0, 32); err != nil || q != p {
				t.Fatalf("round trip of %v: %v %v", p, q, err)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseCIDR(%q) error kind: %v", s, err)
		}
		if err := ValidateName(KindVPC, s); err == nil {
			if IsID(KindVPC, s) || len(s) == 0 || len(s) > MaxNameLen {
				t.Fatalf("accepted name %q", s)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateName(%q) error kind: %v", s, err)
		}
		if n, ok := ParseID(KindVPC, s); ok && FormatID(KindVPC, n) != s {
			t.Fatalf("ParseID(%q) = %d does not round trip", s, n)
		}
		if a, err := ParseIPv4("address", s); err == nil && !a.Is4() {
			t.Fatalf("ParseIPv4(%q) = %v", s, a)
		}
	})
}
