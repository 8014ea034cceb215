package main

// Helpers for the end-to-end tests of the openvpc binary: build it once,
// start `openvpc server` as a subprocess, run client commands and read what
// they print.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
)

// bin is the openvpc binary built by TestMain.
var bin string

// noConfigHome is an empty XDG_CONFIG_HOME for every process a test runs:
// no test reads or writes the user's own client config.
var noConfigHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "openvpc-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(2)
	}
	bin = filepath.Join(dir, "openvpc")
	noConfigHome = filepath.Join(dir, "config-home")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/openvpc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is the test's environment without OPENVPC_SERVER, _CONFIG or
// _TOKEN and with an empty config home, so only what a test sets reaches
// the binary.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENVPC_SERVER=") && !strings.HasPrefix(kv, "OPENVPC_CONFIG=") &&
			!strings.HasPrefix(kv, "OPENVPC_TOKEN=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CONFIG_HOME="+noConfigHome)
}

// freeAddr returns a loopback address with a port nobody listens on now.
//
// The port is outside the kernel's ephemeral range: a port taken from it
// (":0") and closed again can be taken by any process's next outgoing
// connection before the server under test binds it, which failed CI with
// "address already in use". No connect and no ":0" lands below that range.
func freeAddr(t *testing.T) string {
	t.Helper()
	port := freePort(t, "tcp", "127.0.0.1")
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// freePort is a port of network free on ip now, outside the ephemeral
// range (see freeAddr).
func freePort(t *testing.T, network, ip string) int {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := 20000 + rand.IntN(low-20000)
		var l io.Closer
		var err error
		if network == "udp" {
			l, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", ip, port))
		} else {
			l, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", ip, port))
		}
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free %s port in 20000–%d on %s after 100 tries", network, low-1, ip)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default where it cannot be read).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 21000 {
				low = n
			}
		}
	}
	return low
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// apiServer is an `openvpc server` subprocess.
type apiServer struct {
	addr    string // host:port
	url     string // https://host:port
	metrics string // host:port of the metrics listener
	dataDir string
	// config is the client config the server wrote: CA and admin token.
	config string
	admin  *pki.ClientConfig
	// hosts are the credentials of hosts joined by joinHost.
	hosts map[string]*pki.Credentials

	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
	stopped bool
}

// startServer runs `openvpc server` on a free port over dataDir, waits until
// /healthz answers, and stops it (checking for a clean exit) at cleanup.
func startServer(t *testing.T, dataDir string, extra ...string) *apiServer {
	t.Helper()
	addr := freeAddr(t)
	s := &apiServer{addr: addr, url: "https://" + addr, metrics: freeAddr(t), dataDir: dataDir, config: filepath.Join(dataDir, "client-config"),
		stderr: &syncBuffer{}, exited: make(chan struct{}), hosts: map[string]*pki.Credentials{}}
	args := append([]string{"server", "--listen", addr, "--metrics", s.metrics, "--data-dir", dataDir, "--log-level", "warn", "--admin-config", s.config}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = baseEnv()
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = childAttr()
	err := s.cmd.Start()
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		// Ready once it wrote the client config, and answers over TLS
		// with the CA in it.
		var resp *http.Response
		s.admin, err = pki.LoadClientConfig(s.config)
		if err == nil {
			resp, err = s.http(false).Get(s.url + "/healthz")
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was healthy (code %d); output:\n%s", s.cmd.ProcessState.ExitCode(), s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s not healthy after 30s (last error %v); output:\n%s", addr, err, s.stderr)
		}
	}
}

// stopTimeout is how long a server may take to exit after SIGTERM.
const stopTimeout = 5 * time.Second

// stop sends SIGTERM and checks that the server exits with code 0 in time.
// It is safe to call more than once.
func (s *apiServer) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGTERM server: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("server did not exit within %v of SIGTERM; output:\n%s", stopTimeout, s.stderr)
		return
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("server exited with code %d after SIGTERM (in %v), want 0; output:\n%s",
			code, time.Since(start).Round(time.Millisecond), s.stderr)
	}
}

// result is what one CLI invocation did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the binary with args and extra environment variables.
func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(baseEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("openvpc %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("openvpc %s: did not finish in 30s", strings.Join(args, " "))
	}
	return r
}

// http is an HTTP client trusting the server's CA, sending the admin
// token (as the CLI does, from the config the server wrote) when admin is
// set.
func (s *apiServer) http(admin bool) *http.Client {
	if admin {
		conn, err := (&cli.Options{Config: s.config, Server: s.url}).Conn()
		if err != nil {
			panic(err) // the server wrote the config
		}
		return conn.HTTP
	}
	pool, err := pki.NewCredentialsPool([]byte(s.admin.CA))
	if err != nil {
		panic(err)
	}
	return pki.HTTPClient(pki.ClientTLS(pool, nil))
}

// env is the environment a client of s runs with: its client config.
func (s *apiServer) env() []string { return []string{"OPENVPC_CONFIG=" + s.config} }

// run runs a client command against s.
func (s *apiServer) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, s.env(), append([]string{"--server", s.addr}, args...)...)
}

// ok runs a client command that must succeed and returns its stdout.
func (s *apiServer) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.run(t, args...)
	if r.code != 0 {
		t.Fatalf("openvpc %s: want success, got %s", strings.Join(args, " "), r)
	}
	if r.stderr != "" {
		t.Errorf("openvpc %s: unexpected stderr: %s", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

// fail runs a client command that must fail with an API error of code
// (e.g. "not_found", or alternatives "a|b"; empty for a client-side error
// that has no code) and whose stderr
// contains every one of wants. stdout must stay empty.
func (s *apiServer) fail(t *testing.T, code string, wants []string, args ...string) result {
	t.Helper()
	r := s.run(t, args...)
	checkFailure(t, r, code, wants, args)
	return r
}

func checkFailure(t *testing.T, r result, code string, wants []string, args []string) {
	t.Helper()
	cmdline := "openvpc " + strings.Join(args, " ")
	if r.code == 0 {
		t.Errorf("%s: want failure, got %s", cmdline, r)
		return
	}
	if r.stdout != "" {
		t.Errorf("%s: failed but printed on stdout:\n%s", cmdline, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "openvpc: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: stderr should be one line starting with %q, got %q", cmdline, "openvpc: ", r.stderr)
	}
	if code != "" && !slices.ContainsFunc(strings.Split(code, "|"), func(c string) bool {
		return strings.HasSuffix(strings.TrimSpace(r.stderr), "("+c+")")
	}) {
		t.Errorf("%s: stderr should end with the code (%s), got %q", cmdline, code, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr should contain %q, got %q", cmdline, w, r.stderr)
		}
	}
}

// okJSON runs a client command with -o json and decodes its stdout into T.
func okJSON[T any](t *testing.T, s *apiServer, args ...string) T {
	t.Helper()
	out := s.ok(t, append([]string{"-o", "json"}, args...)...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("openvpc -o json %s: output is not the expected JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// The resources as `-o json` prints them: protojson field names, numbers
// as JSON numbers, enums as the words tables print (docs/operations.md).
type (
	vpcJ struct {
		ID               string `json:"id"`
		Name             string `json:"name"`
		CIDR             string `json:"cidr"`
		VNI              uint32 `json:"vni"`
		MainRouteTableID string `json:"mainRouteTableId"`
	}
	subnetJ struct {
		ID           string `json:"id"`
		Name         string `json:"name"`
		VpcID        string `json:"vpcId"`
		CIDR         string `json:"cidr"`
		RouteTableID string `json:"routeTableId"`
		Gateway      string `json:"gateway"`
	}
	routeJ struct {
		Dest   string `json:"destinationCidr"`
		Target string `json:"target"`
		State  string `json:"state"`
	}
	rtbJ struct {
		ID     string   `json:"id"`
		Name   string   `json:"name"`
		VpcID  string   `json:"vpcId"`
		Main   bool     `json:"main"`
		Routes []routeJ `json:"routes"`
	}
	instJ struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		VpcID     string `json:"vpcId"`
		SubnetID  string `json:"subnetId"`
		HostID    string `json:"hostId"`
		State     string `json:"state"`
		EniID     string `json:"eniId"`
		PrivateIP string `json:"privateIp"`
		MAC       string `json:"mac"`
	}
	hostJ struct {
		ID              string `json:"id"`
		UnderlayAddress string `json:"underlayAddress"`
		Role            string `json:"role"`
		Instances       int64  `json:"instances"`
	}
	peeringJ struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		RequesterVpcID string `json:"requesterVpcId"`
		AccepterVpcID  string `json:"accepterVpcId"`
		State          string `json:"state"`
	}
)

// joinToken makes a join token for role with the CLI.
func (s *apiServer) joinToken(t *testing.T, role string) string {
	t.Helper()
	return strings.TrimSpace(s.ok(t, "token", "create", "--role", role))
}

// joinHost joins host id with a fresh token, as `openvpc host
// --join-token` does, and returns a mapping client speaking as it.
func (s *apiServer) joinHost(t *testing.T, id, underlay string) openvpcv1connect.MappingServiceClient {
	t.Helper()
	creds := s.hosts[id]
	if creds == nil {
		var err error
		creds, err = node.LoadOrJoin(context.Background(), node.JoinConfig{
			Server: s.url, HostID: id, Role: pb.HostRole_HOST_ROLE_HOST, Underlay: netip.MustParseAddr(underlay),
			Dir: t.TempDir(), Token: s.joinToken(t, "host"),
		})
		if err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
		s.hosts[id] = creds
	}
	return openvpcv1connect.NewMappingServiceClient(pki.HTTPClient(creds.ClientTLS()), s.url)
}

// registerHost joins and registers a host through the Mapping Service, as
// a host agent does when it starts.
func (s *apiServer) registerHost(t *testing.T, id, underlay string) {
	t.Helper()
	mc := s.joinHost(t, id, underlay)
	_, err := mc.Register(context.Background(), connect.NewRequest(&pb.RegisterRequest{
		HostId: id, UnderlayAddress: underlay, Role: pb.HostRole_HOST_ROLE_HOST,
	}))
	if err != nil {
		t.Fatalf("register host %s: %v", id, err)
	}
}

// registerEdge joins and registers an edge, as `openvpc edge run` does
// when it starts (without serving any function).
func (s *apiServer) registerEdge(t *testing.T, id, underlay string) {
	t.Helper()
	creds, err := node.LoadOrJoin(context.Background(), node.JoinConfig{
		Server: s.url, HostID: id, Role: pb.HostRole_HOST_ROLE_EDGE, Underlay: netip.MustParseAddr(underlay),
		Dir: t.TempDir(), Token: s.joinToken(t, "edge"),
	})
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	mc := openvpcv1connect.NewMappingServiceClient(pki.HTTPClient(creds.ClientTLS()), s.url)
	if _, err := mc.Register(context.Background(), connect.NewRequest(&pb.RegisterRequest{
		HostId: id, UnderlayAddress: underlay, Role: pb.HostRole_HOST_ROLE_EDGE,
	})); err != nil {
		t.Fatalf("register edge %s: %v", id, err)
	}
}

// fakeAgent plays a (registered) host agent's control side: it subscribes to the host's
// mapping stream and acknowledges every batch it receives, so that
// instances become running and `instance run --wait` returns. It stops at
// cleanup (registered after the server's, so it runs before the server
// stops).
func (s *apiServer) fakeAgent(t *testing.T, hostID string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	mc := openvpcv1connect.NewMappingServiceClient(pki.HTTPClient(s.hosts[hostID].ClientTLS()), s.url)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			stream, err := mc.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{HostId: hostID}))
			if err == nil {
				for stream.Receive() {
					if m := stream.Msg(); !m.More {
						_, _ = mc.Ack(ctx, connect.NewRequest(&pb.AckRequest{HostId: hostID, Revision: m.Revision}))
					}
				}
				stream.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}
