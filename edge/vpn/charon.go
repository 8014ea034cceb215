// Package vpn is Blackfoot's site-to-site VPN function: each tunnel's IKE
// and ESP run in a strongSwan charon of its own, in a network namespace of
// its own, driven over VICI.
package vpn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CharonPath is where Debian's strongswan-charon installs the daemon.
const CharonPath = "/usr/lib/ipsec/charon"

// DefaultPlugins is a plugin list that runs IKEv2 with pre-shared keys
// and ESP in userspace (kernel-libipsec) where the kernel has no ESP:
// without kdf, hmac, sha2, aes and gcm IKE fails ("KDF_PRF … not
// supported"); load_modular = no makes charon load exactly these.
var DefaultPlugins = []string{"random", "nonce", "openssl", "kdf", "hmac", "sha2", "aes", "gcm", "pem", "pkcs1", "pubkey",
	"vici", "kernel-libipsec", "kernel-netlink", "socket-default", "updown"}

// CharonConfig is one charon: where it runs and what it may do.
type CharonConfig struct {
	// Netns is the named network namespace (under /run/netns) it runs in.
	Netns string
	// Dir is the charon's own directory: strongswan.conf, the VICI socket
	// and the log. It must exist.
	Dir string
	// Plugins it loads (DefaultPlugins if empty).
	Plugins []string
	// RetransmitTries, RetransmitTimeout and RetransmitBase bound how long
	// an IKEv2 peer that stopped answering takes to be declared dead: the
	// sum of timeout·base^i for i < tries+1. Zero: charon's defaults (5,
	// 4 s, 1.8: about 165 s).
	RetransmitTries   int
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	// Start bounds how long the charon may take to open its VICI socket.
	Start time.Duration
	// NoRoutes: charon installs no routes for its SAs (the edge routes
	// into ipsec0 itself: charon would want a local address inside the
	// local traffic selector, the VPC, which the tunnel's namespace has not).
	NoRoutes bool
}

// DeadPeerRetransmits returns retransmission settings under which a silent
// peer is declared dead after about dpd (tries 3, base 1.4).
func DeadPeerRetransmits(dpd time.Duration) (tries int, timeout time.Duration, base float64) {
	tries, base = 3, 1.4
	sum := 0.0
	for i := 0; i <= tries; i++ {
		sum += pow(base, i)
	}
	timeout = time.Duration(float64(dpd) / sum)
	if timeout < 500*time.Millisecond {
		timeout = 500 * time.Millisecond
	}
	return tries, timeout, base
}

func pow(b float64, n int) float64 {
	r := 1.0
	for range n {
		r *= b
	}
	return r
}

// Charon is a running charon.
type Charon struct {
	cfg  CharonConfig
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Socket is the path of the charon's VICI socket.
func (c *Charon) Socket() string { return filepath.Join(c.cfg.Dir, "charon.vici") }

// Log is the path of the charon's log file.
func (c *Charon) Log() string { return filepath.Join(c.cfg.Dir, "charon.log") }

// Pid is the charon's process id.
func (c *Charon) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the charon has exited.
func (c *Charon) Done() <-chan struct{} { return c.done }

// conf is the charon's strongswan.conf.
func (cfg *CharonConfig) conf(socket, log string) string {
	plugins := cfg.Plugins
	if len(plugins) == 0 {
		plugins = DefaultPlugins
	}
	var b strings.Builder
	// With load_modular = no, charon loads exactly the list in load.
	install := "yes"
	if cfg.NoRoutes {
		install = "no"
	}
	fmt.Fprintf(&b, "charon {\n  load_modular = no\n  load = %s\n  install_routes = %s\n  port = 500\n  port_nat_t = 4500\n", strings.Join(plugins, " "), install)
	if cfg.RetransmitTries > 0 {
		fmt.Fprintf(&b, "  retransmit_tries = %d\n  retransmit_timeout = %.3f\n  retransmit_base = %.3f\n", cfg.RetransmitTries, cfg.RetransmitTimeout.Seconds(), cfg.RetransmitBase)
	}
	fmt.Fprintf(&b, "  plugins {\n    vici {\n      socket = unix://%s\n    }\n  }\n", socket)
	fmt.Fprintf(&b, "  filelog {\n    log {\n      path = %s\n      default = 1\n      ike = 1\n      flush_line = yes\n      time_format = %%T\n    }\n  }\n}\n", log)
	return b.String()
}

// StartCharon starts a charon in cfg.Netns with a private /run (so that
// charons in different namespaces do not share pid files and sockets) and
// waits for its VICI socket.
func StartCharon(ctx context.Context, cfg CharonConfig) (*Charon, error) {
	if cfg.Netns == "" || cfg.Dir == "" {
		return nil, errors.New("vpn: a charon needs a network namespace and a directory")
	}
	if _, err := os.Stat(CharonPath); err != nil {
		return nil, fmt.Errorf("vpn: no strongSwan charon at %s; install strongswan-charon and libcharon-extra-plugins (kernel-libipsec): %w", CharonPath, err)
	}
	if cfg.Start == 0 {
		cfg.Start = 10 * time.Second
	}
	c := &Charon{cfg: cfg, done: make(chan struct{})}
	confPath := filepath.Join(cfg.Dir, "strongswan.conf")
	_ = os.Remove(c.Socket())
	if err := os.WriteFile(confPath, []byte(cfg.conf(c.Socket(), c.Log())), 0o600); err != nil {
		return nil, fmt.Errorf("vpn: %w", err)
	}
	// ip netns exec enters the namespace (and its /etc/netns files);
	// unshare -m gives the charon a mount namespace whose /run is its own.
	c.cmd = exec.Command("ip", "netns", "exec", cfg.Netns, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run && exec "+CharonPath)
	c.cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+confPath)
	c.cmd.SysProcAttr = childAttr()
	out, err := os.OpenFile(filepath.Join(cfg.Dir, "charon.out"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vpn: %w", err)
	}
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("vpn: start charon in %s: %w", cfg.Netns, err)
	}
	go func() { c.err = c.cmd.Wait(); out.Close(); close(c.done) }()
	deadline := time.Now().Add(cfg.Start)
	for {
		if _, err := os.Stat(c.Socket()); err == nil {
			return c, nil
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(filepath.Join(cfg.Dir, "charon.out"))
			return nil, fmt.Errorf("vpn: charon in %s exited at start (%v): %s", cfg.Netns, c.err, b)
		case <-ctx.Done():
			c.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("vpn: charon in %s opened no VICI socket in %v; see %s", cfg.Netns, cfg.Start, c.Log())
		}
	}
}

// Stop ends the charon: SIGTERM to its process group, SIGKILL after 5 s.
func (c *Charon) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Kill ends the charon at once, as a crash would (tests of failover).
func (c *Charon) Kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}
