// Package e2e holds the privileged end-to-end scenarios: physical hosts
// as network namespaces on a bridged underlay, real `openvpc` processes,
// TUN instances and real programs (ping, curl, iperf3, tshark) in them.
// The tests skip without root; OPENVPC_E2E=1 makes a missing prerequisite
// a failure.
package e2e
