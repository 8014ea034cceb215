// Package dataplane is the host's packet path: the egress story (instance →
// wire) and the ingress story (wire → instance), each a short sequence of
// named checks against the mapping cache that ends in a verdict.
package dataplane
