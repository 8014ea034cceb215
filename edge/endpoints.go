package edge

import (
	"github.com/openvpc/openvpc/edge/endpoint"
	"github.com/openvpc/openvpc/host/tables"
)

// withEndpoints adds the gateway-endpoint relay to fns unless it is
// there: every edge relays endpoint traffic (it holds no state and costs
// nothing until a VPC has an endpoint), so `openvpc edge run` needs no
// flag for it.
func withEndpoints(fns []Function) []Function {
	for _, f := range fns {
		if f.Kind() == tables.TargetEndpoint {
			return fns
		}
	}
	return append(fns[:len(fns):len(fns)], endpoint.New())
}
