package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateVLAN(t *testing.T) {
	for vid, ok := range map[uint32]bool{0: false, 1: true, 101: true, 4094: true, 4095: false, 70000: false} {
		if err := ValidateVLAN(vid); (err == nil) != ok {
			t.Errorf("VLAN %d: err %v, want ok=%v", vid, err, ok)
		}
	}
}

func TestValidateASNs(t *testing.T) {
	for asn, ok := range map[uint32]bool{0: false, 1: true, 7224: true, 23456: false, 65000: true, 65535: false, 4200000000: true, 4294967295: false} {
		if err := ValidateCustomerASN(asn); (err == nil) != ok {
			t.Errorf("customer ASN %d: err %v, want ok=%v", asn, err, ok)
		}
	}
	for asn, ok := range map[uint32]bool{64511: false, 64512: true, 65534: true, 65535: false, 4199999999: false, 4200000000: true, 4294967294: true, 4294967295: false, 7224: false} {
		if err := ValidateAmazonASN(asn); (err == nil) != ok {
			t.Errorf("Amazon ASN %d: err %v, want ok=%v", asn, err, ok)
		}
	}
}

func TestValidatePeerAddresses(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		a, c string
		want string // "" for valid
	}{
		{"169.254.10.1/30", "169.254.10.2/30", ""},
		{"169.254.10.2/30", "169.254.10.1/30", ""},
		{"169.254.10.1/29", "169.254.10.2/29", "/30"},
		{"10.0.0.1/30", "10.0.0.2/30", "outside 169.254.0.0/16"},
		{"169.254.10.0/30", "169.254.10.1/30", "network or broadcast"},
		{"169.254.10.1/30", "169.254.10.3/30", "network or broadcast"},
		{"169.254.10.1/30", "169.254.10.5/30", "not in one /30"},
		{"169.254.10.1/30", "169.254.10.1/30", "both"},
		{"169.254.169.253/30", "169.254.169.254/30", "metadata"},
	} {
		err := ValidatePeerAddresses(p(tc.a), p(tc.c))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.a, tc.c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: err %v, want one saying %q", tc.a, tc.c, err, tc.want)
		case err != nil && !errors.Is(err, ErrInvalid):
			t.Errorf("%s %s: %v is not ErrInvalid", tc.a, tc.c, err)
		}
	}
	if err := ValidatePeerAddresses(netip.Prefix{}, p("169.254.1.2/30")); err == nil {
		t.Error("a missing address passed")
	}
}

func TestAllocatePeerAddresses(t *testing.T) {
	var taken []netip.Prefix
	for range 500 {
		a, c := AllocatePeerAddresses(taken)
		if err := ValidatePeerAddresses(a, c); err != nil {
			t.Fatalf("allocated %v %v: %v", a, c, err)
		}
		for _, x := range taken {
			if x.Overlaps(a) {
				t.Fatalf("allocated %v, already taken", a)
			}
		}
		taken = append(taken, a.Masked())
	}
}

func TestValidateAuthKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"":                        false,
		"short":                   false,
		"s3cret":                  true,
		strings.Repeat("k", 80):   true,
		strings.Repeat("k", 81):   false,
		"has space":               false,
		"tab\there":               false,
		"bang!key":                false,
		"hash#key":                false,
		"quo\"te1":                false,
		"ünicode-key":             false,
		"Aa0-_.,;:@$%^&*()[]{}<>": true,
	} {
		if err := ValidateAuthKey(key); (err == nil) != ok {
			t.Errorf("key %q: err %v, want ok=%v", key, err, ok)
		}
	}
	k := NewAuthKey()
	if err := ValidateAuthKey(k); err != nil || len(k) != 24 || k == NewAuthKey() {
		t.Errorf("NewAuthKey %q: %v", k, err)
	}
}

func TestValidatePortAndHold(t *testing.T) {
	for port, ok := range map[string]bool{"": false, "eth1": true, "dx0": true, "a/b": false, "eth0:1": false, "sixteen-chars-xx": false} {
		if err := ValidatePortName(port); (err == nil) != ok {
			t.Errorf("port %q: err %v, want ok=%v", port, err, ok)
		}
	}
	for s, ok := range map[uint32]bool{0: true, 2: false, 3: true, 90: true, 65535: true, 65536: false} {
		if err := ValidateHoldTime(s); (err == nil) != ok {
			t.Errorf("hold %d: err %v, want ok=%v", s, err, ok)
		}
	}
}

// The validators hold their promises on any input: an accepted key is
// printable ASCII without blanks; accepted peer addresses are two hosts of
// one link-local /30; nothing panics.
func FuzzDirectConnectValidators(f *testing.F) {
	f.Add(uint32(101), uint32(65000), "169.254.10.1/30", "169.254.10.2/30", "s3cret-key", "eth1")
	f.Add(uint32(0), uint32(0), "", "", "", "")
	f.Add(uint32(4095), uint32(23456), "169.254.169.253/30", "::1/128", "a b!c", "a/b")
	f.Fuzz(func(t *testing.T, vid, asn uint32, a, c, key, port string) {
		_ = ValidateVLAN(vid)
		_ = ValidateCustomerASN(asn)
		_ = ValidateAmazonASN(asn)
		_ = ValidatePortName(port)
		_ = ValidateHoldTime(vid)
		if ValidateAuthKey(key) == nil {
			if len(key) < MinAuthKey || len(key) > MaxAuthKey || strings.ContainsAny(key, " \t\n\r!#\"'") {
				t.Fatalf("accepted key %q", key)
			}
		}
		pa, errA := netip.ParsePrefix(a)
		pc, errC := netip.ParsePrefix(c)
		if errA != nil || errC != nil {
			return
		}
		if ValidatePeerAddresses(pa, pc) == nil {
			if pa.Masked() != pc.Masked() || pa.Bits() != 30 || !LinkLocal.Contains(pa.Addr()) || pa.Addr() == pc.Addr() {
				t.Fatalf("accepted %v %v", pa, pc)
			}
		}
	})
}
