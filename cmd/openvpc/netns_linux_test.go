package main

import (
	"os"
	"path/filepath"

	"github.com/openvpc/openvpc/host/nic"
)

// namespaceExists reports whether instance inst has a TUN NIC's network
// namespace on this machine.
func namespaceExists(inst string) bool {
	_, err := os.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(inst)))
	return err == nil
}
