package netbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openvpc/openvpc/host/nic"
)

const (
	openvpcPkg = "github.com/openvpc/openvpc/cmd/openvpc"
	serverPort = 7070 // on host A's underlay address; the namespace is ours, so it is free

	// The VPC the two instances share.
	vpcCIDR    = "10.77.0.0/16"
	subnetCIDR = "10.77.1.0/24"

	setupTimeout = 2 * time.Minute // building the binary included
)

// cloud is openvpc running on an Underlay: the server on host A, a host
// agent on each host, and the CLI run from host A.
type cloud struct {
	u      *Underlay
	bin    string // the openvpc binary
	url    string // the server's API
	config string // the client config the server writes (CA, admin token)
	out    map[string]*syncBuffer
	nic    []string // the agents' NIC flags
}

// setupOpenvpcTun builds openvpc, starts the server in host A and a
// `openvpc host run --nic tun` agent in each host namespace, runs an instance
// on each host and returns the instances' namespaces.
func setupOpenvpcTun(u *Underlay) (Endpoints, error) { return setupOpenvpc(u, "--nic", "tun") }

// setupOpenvpcVethFast is setupOpenvpcTun with veth NICs and the kernel
// fast path on (the agents fail rather than fall back to the Go story).
func setupOpenvpcVethFast(u *Underlay) (Endpoints, error) {
	return setupOpenvpc(u, "--nic", "veth", "--fastpath", "on")
}

func setupOpenvpc(u *Underlay, nicArgs ...string) (Endpoints, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	dir, err := u.TempDir()
	if err != nil {
		return Endpoints{}, err
	}
	c := &cloud{u: u, bin: filepath.Join(dir, "openvpc"), url: "https://" + netip.AddrPortFrom(u.A.Underlay.Addr(), serverPort).String(),
		config: filepath.Join(dir, "config"), out: map[string]*syncBuffer{}, nic: nicArgs}
	if err := build(ctx, c.bin); err != nil {
		return Endpoints{}, err
	}
	// Secure, as in production: the server writes the client config (CA and
	// admin token) the CLI uses, and the agents join with tokens.
	if err := c.start(u.A.NS, "server", "server", "--listen", strings.TrimPrefix(c.url, "https://"), "--data-dir", filepath.Join(dir, "server"),
		"--admin-config", c.config); err != nil {
		return Endpoints{}, err
	}
	if err := c.await(ctx, "server", "the server to answer", func() bool { _, err := c.cli(ctx, "vpc", "list"); return err == nil }); err != nil {
		return Endpoints{}, err
	}
	hosts := []Host{u.A, u.B}
	for _, h := range hosts {
		token, err := c.cli(ctx, "token", "create", "--role", "host")
		if err != nil {
			return Endpoints{}, err
		}
		if err := c.startAgent(h, filepath.Join(dir, h.NS), filepath.Join(dir, h.NS+"-cert"), strings.TrimSpace(string(token))); err != nil {
			return Endpoints{}, err
		}
	}
	if err := c.await(ctx, u.B.NS, "both host agents to register", func() bool { return c.reachable(ctx, u.A.NS, u.B.NS) }); err != nil {
		return Endpoints{}, err
	}
	insts, err := c.instances(ctx, hosts)
	if err != nil {
		return Endpoints{}, err
	}
	for _, inst := range insts {
		if err := u.Adopt(nic.NamespaceName(inst.ID)); err != nil {
			return Endpoints{}, err
		}
	}
	return Endpoints{ServerNS: nic.NamespaceName(insts[1].ID), ClientNS: nic.NamespaceName(insts[0].ID), ServerAddr: insts[1].PrivateIP}, nil
}

// build compiles openvpc into bin. One Underlay measures a path for a
// whole run, so this happens once per run (seconds, with Go's build cache
// warm).
func build(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, openvpcPkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netbench: go build %s (run inside the openvpc module): %w\n%s", openvpcPkg, err, out)
	}
	return nil
}

// start runs an openvpc daemon in namespace ns until Close. It gets
// SIGTERM — also if the harness dies — so that a host agent removes its
// instances' namespaces before it exits. Its output is kept under name
// for errors.
func (c *cloud) start(ns, name string, args ...string) error {
	out := &syncBuffer{}
	c.out[name] = out
	cmd := exec.Command(c.bin, append(args, "--log-level", "warn")...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return c.u.Start(ns, cmd)
}

// startAgent runs `openvpc host run` with c.nic in h's namespace, with host id
// h.NS, its state in stateDir, joining with token and keeping its
// credentials in certDir. Should the agent not remove its
// instances' namespaces as it stops (it had to be killed), Close removes
// those its state directory lists, and says so.
func (c *cloud) startAgent(h Host, stateDir, certDir, token string) error {
	c.u.OnClose(func() error { return removeLeftNamespaces(stateDir) }) // runs after the agent has stopped
	addr := h.Underlay.Addr().String()
	args := append([]string{"host", "run", "--server", c.url, "--host-id", h.NS, "--underlay", addr}, c.nic...)
	return c.start(h.NS, h.NS, append(args, "--state-dir", stateDir, "--api", addr+":0", "--cert-dir", certDir, "--join-token", token)...)
}

func removeLeftNamespaces(stateDir string) error {
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil // the agent never started
	}
	ns, err := nic.OpenNamespaces(stateDir)
	if err != nil {
		return fmt.Errorf("netbench: %w", err)
	}
	defer ns.Close()
	left := ns.Owned()
	var errs []error
	for _, name := range left {
		errs = append(errs, ns.Remove(name))
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("netbench: a host agent left namespaces %v behind; removed them", left))
	}
	return errors.Join(errs...)
}

// cli runs an openvpc client command in host A, against the server.
func (c *cloud) cli(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.u.Output(ctx, c.u.A.NS, c.bin, append([]string{"--server", c.url, "--config", c.config}, args...)...)
}

// await polls ok until it holds; if it never does, the error shows what
// the daemon called name printed.
func (c *cloud) await(ctx context.Context, name, what string, ok func() bool) error {
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("netbench: waiting for %s: %w; %s printed: %.1000s", what, ctx.Err(), name, strings.TrimSpace(c.out[name].String()))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// reachable says whether every host in ids is registered and reachable.
func (c *cloud) reachable(ctx context.Context, ids ...string) bool {
	out, err := c.cli(ctx, "host", "list", "-o", "json")
	if err != nil {
		return false
	}
	var hosts []struct {
		ID        string `json:"id"`
		Reachable bool   `json:"reachable"`
	}
	if json.Unmarshal(out, &hosts) != nil {
		return false
	}
	n := 0
	for _, h := range hosts {
		if h.Reachable && slices.Contains(ids, h.ID) {
			n++
		}
	}
	return n == len(ids)
}

// instance is what the CLI says of a running instance.
type instance struct {
	ID        string     `json:"id"`
	PrivateIP netip.Addr `json:"privateIp"`
}

// instances creates the VPC and its subnet and runs one instance on each
// host, waiting until each is running.
func (c *cloud) instances(ctx context.Context, hosts []Host) ([]instance, error) {
	const vpc, subnet = "bench", "bench-a"
	if _, err := c.cli(ctx, "vpc", "create", "--name", vpc, "--cidr", vpcCIDR); err != nil {
		return nil, fmt.Errorf("netbench: %w", err)
	}
	if _, err := c.cli(ctx, "subnet", "create", "--vpc", vpc, "--name", subnet, "--cidr", subnetCIDR); err != nil {
		return nil, fmt.Errorf("netbench: %w", err)
	}
	var insts []instance
	for i, h := range hosts {
		out, err := c.cli(ctx, "instance", "run", "--subnet", subnet, "--name", "i"+strconv.Itoa(i), "--host", h.NS, "--wait", "-o", "json")
		if err != nil {
			return nil, fmt.Errorf("netbench: %w; the agent printed: %.1000s", err, strings.TrimSpace(c.out[h.NS].String()))
		}
		var inst instance
		if err := json.Unmarshal(out, &inst); err != nil || inst.ID == "" {
			return nil, fmt.Errorf("netbench: openvpc instance run printed no instance (%v): %.300s", err, out)
		}
		if _, err := os.Stat(filepath.Join(netnsDir, nic.NamespaceName(inst.ID))); err != nil {
			return nil, fmt.Errorf("netbench: instance %s is running but has no namespace: %w", inst.ID, err)
		}
		insts = append(insts, inst)
	}
	return insts, nil
}
