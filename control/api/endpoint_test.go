package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/openvpc/openvpc/model"
)

func TestPrefixListRoute(t *testing.T) {
	const pl, vpce = "pl-00000000000000aa", "vpce-00000000000000bb"
	for _, c := range []struct {
		cidr, pl, target, says string
	}{
		{"", pl, vpce, ""},
		{"10.0.0.0/8", pl, vpce, "not both"},
		{"", "pl-1", vpce, "not a prefix list id"},
		{"", pl, "igw-00000000000000cc", "only to a gateway endpoint"},
		{"", pl, "", "only to a gateway endpoint"},
	} {
		err := prefixListRoute(c.cidr, c.pl, c.target)
		if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) {
			t.Errorf("prefixListRoute(%q, %q, %q) = %v, want %q", c.cidr, c.pl, c.target, err, c.says)
		}
	}
}

func TestServiceName(t *testing.T) {
	for _, ok := range []string{"com.openvpc.local.s3", "com.amazonaws.us-east-1.s3"} {
		if err := checkServiceName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "s3", "com.openvpc.s3", "com..local.s3", "com.openvpc.local.S3", "com.openvpc.local.s3/x"} {
		if err := checkServiceName(bad); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// FuzzEndpointInput: whatever a client sends as a route's prefix-list
// destination, a service name or an endpoint policy, the API edge either
// accepts what the store can hold or refuses it as invalid — never
// panics, never another kind of error.
func FuzzEndpointInput(f *testing.F) {
	f.Add("", "pl-00000000000000aa", "vpce-00000000000000bb", "com.openvpc.local.s3", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	f.Add("10.0.0.0/8", "pl-x", "igw-1", "a.b", `{"Statement":[]}`)
	f.Fuzz(func(t *testing.T, cidr, pl, target, name, policy string) {
		if err := prefixListRoute(cidr, pl, target); err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("prefixListRoute: %v is not ErrInvalid", err)
			}
		} else if !model.IsID(model.KindPrefixList, pl) || !model.IsID(model.KindEndpoint, target) || cidr != "" {
			t.Fatalf("accepted %q → %q (cidr %q)", pl, target, cidr)
		}
		if err := checkServiceName(name); err != nil && !errors.Is(err, model.ErrInvalid) {
			t.Fatalf("checkServiceName: %v", err)
		} else if err == nil && (len(name) > 128 || strings.ContainsAny(name, "/ \\x00")) {
			t.Fatalf("accepted service name %q", name)
		}
		if err := checkPolicy(policy); err != nil && !errors.Is(err, model.ErrInvalid) {
			t.Fatalf("checkPolicy: %v", err)
		}
	})
}
