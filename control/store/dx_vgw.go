package store

import "context"

// vgwCIDR is the CIDR of the VPC virtual private gateway vgw is attached
// to ("" when detached or unknown). The vgw resource belongs to the VPN
// work; until it is merged here no VIF announces anything.
func (s *Store) vgwCIDR(ctx context.Context, vgw string) (string, error) {
	return "", nil
}
