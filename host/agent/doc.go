// Package agent is the host agent: it joins the Mapping Service, keeps the
// host's mapping cache complete through a subscription, and wires that
// cache to the data plane.
package agent
