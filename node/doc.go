// Package node is what a host agent and an edge share: joining the cloud
// and keeping credentials renewed, the subscription that keeps the mapping
// cache complete, security-event reporting, and the node API (flows,
// traces, acting as a host's instances). host/agent and edge compose it
// with their data planes; a stand-alone service node uses only the joining
// and renewal (LoadOrJoin, NewClient, Renewer).
package node
