package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ConfigEnv names the client config file, overriding the default path.
const ConfigEnv = "OPENVPC_CONFIG"

// ClientConfig is what a client needs to manage a cloud, like a
// kubeconfig: where the server is, the CA to trust it by, and an
// administrator token. It is a secret: the file is the owner's only.
type ClientConfig struct {
	Server string `json:"server"`
	// CA is the PEM certificate of the cloud's CA.
	CA string `json:"ca"`
	// Token is an administrator bearer token.
	Token string `json:"token"`
}

// DefaultConfigPath is $OPENVPC_CONFIG, else $XDG_CONFIG_HOME/openvpc/config,
// else ~/.config/openvpc/config.
func DefaultConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "openvpc", "config")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "openvpc", "config")
	}
	return filepath.Join(".openvpc", "config")
}

// LoadClientConfig reads a client config; a missing file is
// os.ErrNotExist.
func LoadClientConfig(path string) (*ClientConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c ClientConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("client config %s: %v (delete it, and openvpc server/up writes a new one)", path, err)
	}
	if c.Server == "" {
		return nil, fmt.Errorf("client config %s names no server", path)
	}
	return &c, nil
}

// SaveClientConfig writes c to path, mode 0600 (it holds a token).
func SaveClientConfig(path string, c *ClientConfig) error {
	if c.Server == "" {
		return errors.New("pki: client config without a server")
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), 0o600)
}
