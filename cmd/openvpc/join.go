package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
)

// joinFlags are how a host, edge or service node proves it may join the
// cloud.
type joinFlags struct {
	token, caFile, certDir string
	insecure               bool
}

// defaultCertRoot holds each agent's credentials. Unlike the namespaces
// recorded under /run, a certificate outlives a reboot.
const defaultCertRoot = "/var/lib/openvpc"

func (j *joinFlags) add(c *cobra.Command, what string) {
	j.addCert(c, what)
	c.Flags().BoolVar(&j.insecure, "insecure-loopback", false, "join a server started with --insecure-loopback: no TLS, no certificate (development on loopback only)")
}

// addCert adds the flags of joining with a certificate only: for a
// command that, without them, calls the server otherwise (service s3,
// with the client config).
func (j *joinFlags) addCert(c *cobra.Command, what string) {
	f := c.Flags()
	f.StringVar(&j.token, "join-token", "", "one-time join token (openvpc token create --role "+what+"); needed only until --cert-dir holds a certificate")
	f.StringVar(&j.caFile, "ca-file", "", "the cloud's CA certificate to trust the server by (default: the fingerprint in --join-token)")
	f.StringVar(&j.certDir, "cert-dir", "", "where the "+what+"'s key and certificate are kept, renewed before they expire (default "+defaultCertRoot+"/ID)")
}

// credentials returns the agent's credentials (nil when insecure), joining
// the cloud if it has none yet, and the server URL to use.
func (j *joinFlags) credentials(ctx context.Context, o *cli.Options, log *slog.Logger, id string, role pb.HostRole, underlay netip.Addr) (*pki.Credentials, string, error) {
	server := cli.BaseURL(o.Server)
	if j.insecure {
		u, err := url.Parse(server)
		if err == nil && u.Scheme == "https" {
			u.Scheme = "http"
			server = u.String()
		}
		ip, err := netip.ParseAddr(u.Hostname())
		if err != nil || !ip.IsLoopback() {
			return nil, "", fmt.Errorf("--insecure-loopback: the server must be on a loopback address, not %s", server)
		}
		return nil, server, nil
	}
	if j.certDir == "" {
		j.certDir = filepath.Join(defaultCertRoot, id)
	}
	creds, err := node.LoadOrJoin(ctx, node.JoinConfig{
		Server: server, HostID: id, Role: role, Underlay: underlay, Dir: j.certDir, Token: j.token, CAFile: j.caFile, Logger: log,
	})
	return creds, server, err
}
