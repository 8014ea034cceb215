// Package agent is the host agent: a node (joined to the Mapping Service,
// its cache complete through a subscription) composed with the host's
// data plane and its instances' NICs, one per local ENI.
package agent
