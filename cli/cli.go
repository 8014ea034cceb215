// Package cli is openvpc's client: noun-verb commands that call a server's
// management API and print tables or JSON.
package cli

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/pki"
)

// DefaultServer is the API address used when neither --server,
// OPENVPC_SERVER nor the client config says otherwise.
const DefaultServer = "https://127.0.0.1:7070"

// Env is the environment variable naming the server.
const Env = "OPENVPC_SERVER"

// TokenEnv is the environment variable that overrides the client config's
// admin token.
const TokenEnv = "OPENVPC_TOKEN"

// Options are the flags every client command shares.
type Options struct {
	Server string
	Output string
	// Config is the client config file (default pki.DefaultConfigPath).
	Config string
}

// AddCommands adds the client commands to root, with their shared flags.
// `host` is left to the caller, who owns the host agent command; give it
// HostList as a subcommand.
func AddCommands(root *cobra.Command) *Options {
	o := &Options{}
	root.Version = Build().String()
	root.SetVersionTemplate("openvpc {{.Version}}\n")
	root.PersistentFlags().StringVar(&o.Server, "server", "", "API address (default $"+Env+", else "+DefaultServer+")")
	root.PersistentFlags().StringVarP(&o.Output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&o.Config, "config", "", "client config: server URL, CA and admin token (default $"+pki.ConfigEnv+", else $XDG_CONFIG_HOME/openvpc/config or ~/.config/openvpc/config; openvpc server and up write it)")
	root.AddCommand(vpcCmd(o), subnetCmd(o), routeTableCmd(o), routeCmd(o), instanceCmd(o), peeringCmd(o), igwCmd(o), eipCmd(o), cgwCmd(o), vgwCmd(o), vpnCmd(o), sgCmd(o), aclCmd(o), prefixListCmd(o), flowLogCmd(o), zoneCmd(o), dxCmd(o), eventsCmd(o), flowsCmd(o), traceCmd(o), pingCmd(o), connectCmd(o), forwardCmd(o), execCmd(o), tokenCmd(o), versionCmd(o))
	return o
}

// BaseURL normalizes a server address into a URL: without a scheme,
// https (http:// only for servers started with --insecure-loopback).
func BaseURL(s string) string {
	if s == "" {
		s = os.Getenv(Env)
	}
	if s == "" {
		s = DefaultServer
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	return strings.TrimRight(s, "/")
}

// HTTPClient speaks cleartext HTTP/2 (to --insecure-loopback servers), so
// many calls and streams share one connection.
func HTTPClient() *http.Client { return pki.HTTPClient(nil) }

// Conn is how client commands reach the API.
type Conn struct {
	URL string
	// HTTP adds the admin token to every request.
	HTTP *http.Client
	// TLS and Token are set for TLS servers (all but --insecure-loopback).
	TLS   *tls.Config
	Token string
}

// Conn reads the client config and says how to reach the API: the URL
// from --server, $OPENVPC_SERVER or the config; the CA and admin token
// from the config ($OPENVPC_TOKEN overrides the token).
func (o *Options) Conn() (*Conn, error) {
	path := o.Config
	if path == "" {
		path = pki.DefaultConfigPath()
	}
	cfg, err := pki.LoadClientConfig(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	server := cmp.Or(o.Server, os.Getenv(Env))
	if server == "" && cfg != nil {
		server = cfg.Server
	}
	url := BaseURL(server)
	if strings.HasPrefix(url, "http://") {
		return &Conn{URL: url, HTTP: HTTPClient()}, nil
	}
	if cfg == nil {
		return nil, fmt.Errorf("no admin token: no client config at %s; run openvpc server or openvpc up on this machine (they write it), or pass --config (or set %s) to the config they wrote", path, pki.ConfigEnv)
	}
	pool, err := pki.NewCredentialsPool([]byte(cfg.CA))
	if err != nil {
		return nil, fmt.Errorf("client config %s: its CA: %v", path, err)
	}
	c := &Conn{URL: url, TLS: pki.ClientTLS(pool, nil), Token: cmp.Or(os.Getenv(TokenEnv), cfg.Token)}
	hc := pki.HTTPClient(c.TLS)
	hc.Transport = bearer{token: c.Token, next: hc.Transport}
	c.HTTP = hc
	return c, nil
}

// bearer adds an admin token to each request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

type clients struct {
	conn  *Conn
	vpc   openvpcv1connect.VpcServiceClient
	inst  openvpcv1connect.InstanceServiceClient
	trust openvpcv1connect.TrustServiceClient
	zone  openvpcv1connect.ZoneServiceClient
	vpn   openvpcv1connect.VpnServiceClient
}

func (o *Options) clients() (*clients, error) {
	if o.Output != "table" && o.Output != "json" {
		return nil, fmt.Errorf("output format %q is not known; use -o table or -o json", o.Output)
	}
	c, err := o.Conn()
	if err != nil {
		return nil, err
	}
	return &clients{
		conn:  c,
		vpc:   openvpcv1connect.NewVpcServiceClient(c.HTTP, c.URL),
		inst:  openvpcv1connect.NewInstanceServiceClient(c.HTTP, c.URL),
		trust: openvpcv1connect.NewTrustServiceClient(c.HTTP, c.URL),
		zone:  openvpcv1connect.NewZoneServiceClient(c.HTTP, c.URL),
		vpn:   openvpcv1connect.NewVpnServiceClient(c.HTTP, c.URL),
	}, nil
}

// Explain turns an API error into the line printed on stderr.
func Explain(err error, server string) string {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	if connect.IsWireError(err) {
		// The server answered: whatever it says ("dial tcp …" from inside an
		// instance, say) happened behind it, not between us and it.
		return fmt.Sprintf("%s (%s)", ce.Message(), ce.Code())
	}
	url := BaseURL(server)
	_, hostport, _ := strings.Cut(url, "://")
	msg := ce.Message()
	switch {
	case strings.HasPrefix(url, "http://") && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset")):
		// A TLS server hangs up on cleartext HTTP/2.
		return fmt.Sprintf("the server at %s hung up on plain HTTP: the openvpc API speaks https; use --server https://%s (http:// is only for servers started with --insecure-loopback)", url, hostport)
	case strings.HasPrefix(url, "https://") && strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Sprintf("the server at %s speaks plain http (it was started with --insecure-loopback): use --server http://%s", url, hostport)
	case ce.Code() == connect.CodeUnavailable && strings.Contains(msg, "dial tcp "+hostport):
		return fmt.Sprintf("cannot reach the openvpc server at %s: %s (start it with `openvpc server` or `openvpc up`, or set --server)", url, msg)
	case ce.Code() == connect.CodeUnavailable && strings.Contains(msg, "dial tcp "):
		// The server came from the client config, not --server.
		return fmt.Sprintf("cannot reach the openvpc server: %s (start it with `openvpc server` or `openvpc up`, or set --server)", msg)
	}
	return fmt.Sprintf("%s (%s)", msg, ce.Code())
}

// printer writes resources as a table or as JSON.
type printer struct {
	w      io.Writer
	format string
}

func (o *Options) printer(cmd *cobra.Command) *printer {
	return &printer{w: cmd.OutOrStdout(), format: o.Output}
}

// one prints a single resource.
func (p *printer) one(m proto.Message, header []string, row []string) error {
	if p.format == "json" {
		b, err := marshalJSON(m)
		if err != nil {
			return err
		}
		return p.indent(b)
	}
	return p.table(header, [][]string{row})
}

// list prints resources; as JSON, an array.
func list[M proto.Message](p *printer, ms []M, header []string, row func(M) []string) error {
	if p.format == "json" {
		parts := make([]json.RawMessage, len(ms))
		for i, m := range ms {
			b, err := marshalJSON(m)
			if err != nil {
				return err
			}
			parts[i] = b
		}
		b, err := json.Marshal(parts)
		if err != nil {
			return err
		}
		return p.indent(b)
	}
	rows := make([][]string, len(ms))
	for i, m := range ms {
		rows[i] = row(m)
	}
	return p.table(header, rows)
}

func (p *printer) indent(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := p.w.Write(buf.Bytes())
	return err
}

// lineJSON prints m as one line of JSON, for followed output.
func (p *printer) lineJSON(m proto.Message) error {
	b, err := marshalJSON(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.w, "%s\n", b)
	return err
}

// rows prints table rows, with the header only when asked (the first
// batch of followed output).
func (p *printer) rows(header []string, rows [][]string, withHeader bool) error {
	if withHeader {
		return p.table(header, rows)
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func (p *printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			if r[i] == "" {
				r[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// enum shortens an enum name: INSTANCE_STATE_RUNNING → running.
func enum(s fmt.Stringer, prefix string) string {
	v := strings.ToLower(strings.TrimPrefix(s.String(), prefix))
	return strings.ReplaceAll(v, "_", "-")
}

func ago(t *timestamppb.Timestamp) string {
	if t == nil || !t.IsValid() || t.AsTime().IsZero() || t.AsTime().Unix() <= 0 {
		return ""
	}
	return time.Since(t.AsTime()).Round(time.Second).String() + " ago"
}

// call wraps a request body in a connect request.
func call[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// action wraps a command body with client setup.
func action(o *Options, fn func(cmd *cobra.Command, cl *clients, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := o.clients()
		if err != nil {
			return err
		}
		return fn(cmd, cl, args)
	}
}

// required marks flags a command cannot run without.
func required(c *cobra.Command, names ...string) {
	for _, n := range names {
		_ = c.MarkFlagRequired(n)
	}
}
