package store

import (
	"context"
	"errors"
	"net/netip"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// vgwCIDR is the CIDR of the VPC virtual private gateway vgw is attached
// to ("" when detached or deleted).
func (s *Store) vgwCIDR(ctx context.Context, vgw string) (string, error) {
	g, err := s.GetVpnGateway(ctx, vgw)
	if errors.Is(err, model.ErrNotFound) || (err == nil && g.VpcId == "") {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	v, err := s.GetVPC(ctx, g.VpcId)
	if errors.Is(err, model.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return v.Cidr, nil
}

// dxVGWs are the virtual private gateways VIF v propagates into: its own,
// or its Direct Connect gateway's associations.
func (s *Store) dxVGWs(ctx context.Context, v *pb.DxVirtualInterface) ([]string, error) {
	if v.DxGatewayId == "" {
		return []string{v.VpnGatewayId}, nil
	}
	g, err := s.GetDXGateway(ctx, v.DxGatewayId)
	if err != nil {
		return nil, err
	}
	return g.VpnGatewayIds, nil
}

// dxPropagate adds to t the routes VIF v propagates given its status: the
// prefixes it learned while its session is established, none otherwise
// (a session going down withdraws them at once, from every table).
// Prefixes that are no site's (inside 169.254.0.0/16, a default route
// when refused…) are left out.
func (s *Store) dxPropagate(ctx context.Context, t *txn, v *pb.DxVirtualInterface, st *pb.DxBgpStatus) error {
	vgws, err := s.dxVGWs(ctx, v)
	if err != nil {
		return err
	}
	var prefixes []netip.Prefix
	if st.GetBgpState() == "established" {
		for _, x := range st.PrefixesReceived {
			p, err := netip.ParsePrefix(x)
			if err != nil || ValidateSiteRoute(p) != nil {
				continue
			}
			prefixes = append(prefixes, p)
		}
	}
	for _, g := range vgws {
		if model.IsID(model.KindVPNGateway, g) {
			s.putPropagated(t, g, v.Id, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, prefixes)
		}
	}
	return nil
}
