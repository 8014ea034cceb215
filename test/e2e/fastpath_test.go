package e2e

import "testing"

// TestVethInstances is TestLinuxInstances with veth NICs and the Go story
// alone: ping, curl, iperf3, peering, isolation, spoofing, tshark, crash.
func TestVethInstances(t *testing.T) { linuxInstances(t, "--nic", "veth") }
