//go:build linux

// Package frr runs FRR's bgpd as a customer router for tests: one
// standalone bgpd (no zebra) per router, inside a network namespace the
// test made, with its own config, pid file and vty socket under the
// test's temporary directory, stopped by its PID at cleanup.
package frr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openvpc/openvpc/nsthread"
)

// Bgpd is where Debian's frr package puts bgpd.
const Bgpd = "/usr/lib/frr/bgpd"

// Available says whether bgpd and vtysh are installed.
func Available() bool {
	_, err1 := os.Stat(Bgpd)
	_, err2 := exec.LookPath("vtysh")
	return err1 == nil && err2 == nil
}

// Router is one running bgpd.
type Router struct {
	t    testing.TB
	dir  string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Start runs bgpd with config conf inside the namespace at nsPath
// (/run/netns/NAME). Before conf come the lines FRR needs to run without
// zebra and with no policy (PLATFORM.md).
func Start(t testing.TB, nsPath, conf string) *Router {
	t.Helper()
	dir := t.TempDir()
	// bgpd drops to user frr for some files even with -S: let it in.
	_ = os.Chmod(dir, 0o777)
	cf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Router{t: t, dir: dir, out: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(Bgpd, "-Z", "-n", "-S", "-f", cf, "-i", filepath.Join(dir, "bgpd.pid"),
		"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "--log", "stdout")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := nsthread.InPath(nsPath, r.cmd.Start); err != nil {
		t.Fatalf("start bgpd in %s: %v", nsPath, err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(r.Stop)
	// Ready when its vty answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.VTY("show bgp summary"); err == nil {
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("bgpd exited at start:\n%s", r.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bgpd's vty did not answer in 10 s:\n%s", r.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends bgpd by its PID (SIGTERM, then SIGKILL) and waits.
func (r *Router) Stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Log is what bgpd printed.
func (r *Router) Log() string { return r.out.String() }

// VTY runs one vtysh command against this bgpd.
func (r *Router) VTY(cmd string) (string, error) {
	out, err := exec.Command("vtysh", "--vty_socket", r.dir, "-d", "bgpd", "-c", cmd).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh -c %q: %v: %s", cmd, err, out)
	}
	return string(out), nil
}

// NeighborState is the BGP state of neighbor addr ("Established", "Active",
// …), as `show bgp neighbors json` says.
func (r *Router) NeighborState(addr netip.Addr) (string, error) {
	out, err := r.VTY("show bgp neighbors " + addr.String() + " json")
	if err != nil {
		return "", err
	}
	var m map[string]struct {
		BgpState string `json:"bgpState"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return "", fmt.Errorf("show bgp neighbors: %v: %s", err, out)
	}
	n, ok := m[addr.String()]
	if !ok {
		return "", fmt.Errorf("bgpd has no neighbor %v: %s", addr, out)
	}
	return n.BgpState, nil
}

// Routes are the IPv4 unicast prefixes in bgpd's table.
func (r *Router) Routes() ([]netip.Prefix, error) {
	out, err := r.VTY("show bgp ipv4 unicast json")
	if err != nil {
		return nil, err
	}
	var m struct {
		Routes map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("show bgp ipv4 unicast: %v: %s", err, out)
	}
	var ps []netip.Prefix
	for k := range m.Routes {
		if p, err := netip.ParsePrefix(k); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// Check runs bgpd's dry run (-C) on conf and returns what it complained
// of: nil when the configuration loads cleanly.
func Check(conf string) error {
	dir, err := os.MkdirTemp("", "frr-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := exec.Command(Bgpd, "-C", "-Z", "-n", "-S", "-f", cf, "-i", filepath.Join(dir, "pid"),
		"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "--log", "stdout").CombinedOutput()
	s := string(out)
	if err != nil || strings.Contains(s, "[EC ") || strings.Contains(s, "No such command") || strings.Contains(s, "rror") || strings.Contains(s, "Unknown command") || strings.Contains(s, "% ") {
		return errors.Join(err, fmt.Errorf("bgpd -C: %s", s))
	}
	return nil
}

// Configure runs configuration commands in vtysh's configure mode, in one
// vtysh (e.g. "router bgp 65000", "neighbor 169.254.1.1 shutdown").
func (r *Router) Configure(cmds ...string) error {
	args := []string{"--vty_socket", r.dir, "-d", "bgpd", "-c", "configure terminal"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("% ")) {
		return fmt.Errorf("vtysh configure %q: %v: %s", cmds, err, out)
	}
	return nil
}
