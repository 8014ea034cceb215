package api

import (
	"context"
	"net/netip"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/model"
)

// byRef validates a name-or-id, runs one store call on that resource and
// wraps the result: the shape of every Get, Accept and Terminate handler.
func byRef[M, R any](ctx context.Context, k model.Kind, r string, fetch func(context.Context, string) (M, error), wrap func(M) *R) (*connect.Response[R], error) {
	if err := ref(k, k.Noun(), r); err != nil {
		return nil, err
	}
	m, err := fetch(ctx, r)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(wrap(m)), nil
}

// remove validates a name-or-id and deletes the resource: the shape of
// every Delete handler.
func remove[R any](ctx context.Context, k model.Kind, r string, del func(context.Context, string) error) (*connect.Response[R], error) {
	if err := ref(k, k.Noun(), r); err != nil {
		return nil, err
	}
	if err := del(ctx, r); err != nil {
		return nil, err
	}
	return connect.NewResponse(new(R)), nil
}

// optionalName validates a name that may be empty.
func optionalName(k model.Kind, name string) error {
	if name == "" {
		return nil
	}
	return model.ValidateName(k, name)
}

// ref validates a name-or-id argument.
func ref(k model.Kind, what, s string) error {
	if s == "" {
		return model.Invalidf("%s is required: give the %s's name or id", what, k.Noun())
	}
	if model.IsID(k, s) {
		return nil
	}
	if vpc, ok := model.DefaultOf(s); ok && (k == model.KindSecurityGroup || k == model.KindNetworkACL) {
		return ref(model.KindVPC, "VPC", vpc) // red/default: the VPC's default one
	}
	return model.ValidateName(k, s)
}

// optionalRef validates a name-or-id filter that may be empty.
func optionalRef(k model.Kind, what, s string) error {
	if s == "" {
		return nil
	}
	return ref(k, what, s)
}

// vpcCIDR parses a VPC's CIDR.
func vpcCIDR(s string) (netip.Prefix, error) {
	return model.ParseCIDR("VPC CIDR", s, model.MinPrefixLen, model.MaxPrefixLen)
}

// subnetCIDR parses a subnet's CIDR.
func subnetCIDR(s string) (netip.Prefix, error) {
	return model.ParseCIDR("subnet CIDR", s, model.MinPrefixLen, model.MaxPrefixLen)
}

// routeDest parses a route's destination (any IPv4 prefix, /0 to /32).
func routeDest(s string) (netip.Prefix, error) {
	return model.ParseCIDR("route destination", s, 0, 32)
}

// millis turns a duration in milliseconds from the wire into a Duration,
// bounding it first so that no value wraps: 0 means the default (def, or
// the callee's when def is 0), otherwise 1 ms to max.
func millis(what string, ms int64, def, max time.Duration) (time.Duration, error) {
	if ms == 0 {
		return def, nil
	}
	if ms < 0 || ms > max.Milliseconds() {
		return 0, model.Invalidf("%s of %d ms: give at most %v (0 for the default)", what, ms, max)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// count checks a count from the wire: 0 (the default) to max.
func count(what string, n, max int64) error {
	if n < 0 || n > max {
		return model.Invalidf("%s %d: give 0 (the default) to %d", what, n, max)
	}
	return nil
}
