package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/nsthread"
)

// The underlay uses the benchmarking range (RFC 2544), which no real
// network routes; it exists only inside the two namespaces.
var (
	underlayA = netip.MustParsePrefix("198.18.0.1/24")
	underlayB = netip.MustParsePrefix("198.18.0.2/24")
)

const iperf3Port = 5201

var underlays atomic.Int32 // numbers each Underlay of this process, so names never collide

// Underlay is two host namespaces joined by a veth pair: the wire every
// Path is built on. Close removes both namespaces (and with them every
// link in them) and stops every process started in them.
type Underlay struct {
	A, B Host

	mu       sync.Mutex
	ns       map[string]netns.NsHandle
	handles  map[string]*netlink.Handle
	cleanups []func() error
}

// NewUnderlay makes the two host namespaces and the veth pair between
// them, up and addressed. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
func NewUnderlay() (u *Underlay, err error) {
	removeStale()
	name := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), underlays.Add(1))
	u = &Underlay{
		A:       Host{NS: name + "a", Link: "ul0", Underlay: underlayA},
		B:       Host{NS: name + "b", Link: "ul0", Underlay: underlayB},
		ns:      map[string]netns.NsHandle{},
		handles: map[string]*netlink.Handle{},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, u.Close())
			u = nil
		}
	}()
	for _, h := range []Host{u.A, u.B} {
		if err := u.NewNS(h.NS); err != nil {
			return u, err
		}
	}
	ha, err := u.Handle(u.A.NS)
	if err != nil {
		return u, err
	}
	// Both ends are created straight in their namespaces: the veth never
	// appears in the root namespace.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: u.A.Link}, PeerName: u.B.Link, PeerNamespace: netlink.NsFd(u.ns[u.B.NS])}
	if err := ha.LinkAdd(veth); err != nil {
		return u, fmt.Errorf("netbench: create the veth pair between %s and %s: %w", u.A.NS, u.B.NS, err)
	}
	for _, h := range []Host{u.A, u.B} {
		if err := u.AddrUp(h.NS, h.Link, h.Underlay); err != nil {
			return u, err
		}
	}
	return u, nil
}

// NewNS makes a named network namespace with its loopback up, removed by
// Close. Path setups may make more (instances' namespaces, say).
func (u *Underlay) NewNS(name string) error {
	var h netns.NsHandle
	err := nsthread.Run(func() (err error) {
		h, err = netns.NewNamed(name) // also moves this thread into it: onThread moves it back
		return err
	})
	if err != nil {
		return fmt.Errorf("netbench: create network namespace %s (needs root): %w", name, err)
	}
	u.mu.Lock()
	u.ns[name] = h
	u.mu.Unlock()
	u.OnClose(func() error {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			return fmt.Errorf("netbench: remove network namespace %s (try `ip netns del %s`): %w", name, name, err)
		}
		return nil
	})
	hl, err := u.Handle(name)
	if err != nil {
		return err
	}
	lo, err := hl.LinkByName("lo")
	if err == nil {
		err = hl.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("netbench: bring up lo in %s: %w", name, err)
	}
	return nil
}

// Handle is a netlink handle working inside namespace ns (one this
// Underlay made), closed by Close.
func (u *Underlay) Handle(ns string) (*netlink.Handle, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if h, ok := u.handles[ns]; ok {
		return h, nil
	}
	nsh, ok := u.ns[ns]
	if !ok {
		return nil, fmt.Errorf("netbench: no namespace %s in this underlay", ns)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netbench: netlink in %s: %w", ns, err)
	}
	u.handles[ns] = h
	return h, nil
}

// AddrUp puts address p on link in namespace ns and brings the link up.
func (u *Underlay) AddrUp(ns, link string, p netip.Prefix) error {
	h, err := u.Handle(ns)
	if err != nil {
		return err
	}
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("netbench: find %s in %s: %w", link, ns, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("netbench: add %s to %s in %s: %w", p, link, ns, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("netbench: bring up %s in %s: %w", link, ns, err)
	}
	return nil
}

// OnClose registers f to run at Close, in reverse order of registration.
func (u *Underlay) OnClose(f func() error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cleanups = append(u.cleanups, f)
}

// Close stops what was started and removes what was made, newest first,
// and reports everything that could not be undone.
func (u *Underlay) Close() error {
	u.mu.Lock()
	cleanups := u.cleanups
	u.cleanups = nil
	handles := u.handles
	u.handles = map[string]*netlink.Handle{}
	u.mu.Unlock()
	// Netlink sockets hold their namespace: close them before the
	// namespaces are removed, so that the kernel can free them.
	for _, h := range handles {
		h.Close()
	}
	var errs []error
	for i := len(cleanups) - 1; i >= 0; i-- {
		errs = append(errs, cleanups[i]())
	}
	return errors.Join(errs...)
}

// stopGrace is how long Close lets a process started with Start end on
// SIGTERM before it kills it. openvpc's host agent uses it to remove the
// namespaces it made for its instances.
const stopGrace = 10 * time.Second

// Start starts cmd inside namespace ns (one this Underlay made or
// adopted) and makes Close stop it: SIGTERM, then SIGKILL if it has not
// ended within stopGrace. The process gets SIGKILL if the harness dies
// first, so a crash leaves no program running — unless cmd.SysProcAttr
// names another Pdeathsig (SIGTERM, for a program that cleans up after
// itself).
func (u *Underlay) Start(ns string, cmd *exec.Cmd) error {
	if err := u.startIn(ns, cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	u.OnClose(func() error {
		cmd.Process.Signal(syscall.SIGTERM) // our own child, by its pid
		select {
		case <-done:
			return nil
		case <-time.After(stopGrace):
		}
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("netbench: %s in %s ignored SIGTERM for %v; killed it", filepath.Base(cmd.Path), ns, stopGrace)
	})
	return nil
}

// Output runs name with args inside namespace ns and returns its standard
// output; an error carries its standard error. ctx bounds it.
func (u *Underlay) Output(ctx context.Context, ns, name string, args ...string) ([]byte, error) {
	var stdout, stderr syncBuffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := u.startIn(ns, cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %.500s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Adopt makes namespace name — one a program started by this Underlay
// created under /run/netns — usable with Handle, Start and Iperf3. Close
// lets go of it but does not remove it: its maker does.
func (u *Underlay) Adopt(name string) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netbench: open network namespace %s: %w", name, err)
	}
	u.mu.Lock()
	u.ns[name] = h
	u.mu.Unlock()
	u.OnClose(func() error {
		u.mu.Lock()
		delete(u.ns, name)
		u.mu.Unlock()
		return h.Close()
	})
	return nil
}

// TempDir makes a directory for this Underlay's files, removed by Close.
// Its name, ovb-<pid>-…, lets a later run remove it if this one is killed.
func (u *Underlay) TempDir() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", nsPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("netbench: %w", err)
	}
	u.OnClose(func() error { return os.RemoveAll(dir) })
	return dir, nil
}

func (u *Underlay) startIn(ns string, cmd *exec.Cmd) error {
	u.mu.Lock()
	nsh, ok := u.ns[ns]
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("netbench: no namespace %s in this underlay", ns)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// A child starts in the network namespace of the thread that forks it.
	err := nsthread.Run(func() error {
		if err := netns.Set(nsh); err != nil {
			return fmt.Errorf("netbench: enter %s: %w", ns, err)
		}
		return cmd.Start()
	})
	if err != nil {
		return fmt.Errorf("netbench: start %s in %s: %w", cmd.Path, ns, err)
	}
	return nil
}

// removeStale removes the namespaces and temporary directories this
// package left behind in a run that was killed before it could clean up
// (their pid no longer exists). Their processes died with that run
// (Pdeathsig), so nothing holds them.
func removeStale() {
	for _, dir := range []string{netnsDir, os.TempDir()} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !staleName(e.Name()) {
				continue
			}
			if dir == netnsDir {
				netns.DeleteNamed(e.Name())
			} else {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// staleName says whether name is one of ours (ovb-<pid>-…) from a process
// that no longer runs.
func staleName(name string) bool {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
	if err != nil || pid == os.Getpid() {
		return false
	}
	_, err = os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return errors.Is(err, os.ErrNotExist)
}

// Iperf3 starts an iperf3 server in e.ServerNS, runs an iperf3 client in
// e.ClientNS for each run in turn, stops the server and returns what each
// run measured.
func (u *Underlay) Iperf3(ctx context.Context, e Endpoints, runs ...Run) ([]Result, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return nil, ErrNoIperf3
	}
	var serr syncBuffer
	srv := exec.Command("iperf3", "-s", "-B", e.ServerAddr.String(), "-p", strconv.Itoa(iperf3Port))
	srv.Stdout, srv.Stderr = io.Discard, &serr
	if err := u.startIn(e.ServerNS, srv); err != nil {
		return nil, err
	}
	defer func() {
		srv.Process.Kill() // our own child, by its pid
		srv.Wait()
	}()
	if err := awaitListen(ctx, srv, iperf3Port, &serr); err != nil {
		return nil, err
	}
	var out []Result
	for _, r := range runs {
		res, err := u.iperf3Client(ctx, e, r)
		if err != nil {
			return out, fmt.Errorf("%s → %s, %d streams: %w", e.ClientNS, e.ServerNS, r.Streams, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func (u *Underlay) iperf3Client(ctx context.Context, e Endpoints, r Run) (Result, error) {
	secs := max(1, int(r.Duration.Round(time.Second)/time.Second))
	var stdout, stderr syncBuffer
	cmd := exec.CommandContext(ctx, "iperf3", "-c", e.ServerAddr.String(), "-p", strconv.Itoa(iperf3Port),
		"-t", strconv.Itoa(secs), "-P", strconv.Itoa(max(1, r.Streams)), "-J", "--connect-timeout", "5000")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := u.startIn(e.ClientNS, cmd); err != nil {
		return Result{}, err
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	res, err := parseIperf3(stdout.Bytes())
	if err != nil && werr != nil {
		err = fmt.Errorf("%w (%v; stderr: %.200s)", err, werr, strings.TrimSpace(stderr.String()))
	}
	return res, err
}

// awaitListen waits until the server process has a TCP socket listening
// on port, read from its own view of /proc (it lives in another network
// namespace), without connecting: a probe connection would count as a
// failed test on the server.
func awaitListen(ctx context.Context, srv *exec.Cmd, port int, serr *syncBuffer) error {
	want := fmt.Sprintf(":%04X 00000000:0000 0A", port) // local port, no remote, state LISTEN
	want6 := fmt.Sprintf(":%04X 00000000000000000000000000000000:0000 0A", port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", srv.Process.Pid, f))
			if strings.Contains(string(b), want) || strings.Contains(string(b), want6) {
				return nil
			}
		}
		if err := syscall.Kill(srv.Process.Pid, 0); err != nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("netbench: the iperf3 server did not listen on port %d within 5 s: %.300s", port, strings.TrimSpace(serr.String()))
}

// syncBuffer collects a process's output; written by exec's copying
// goroutine, read by us.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b...)
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// setupVXLAN makes a VXLAN device over the veth in each host namespace,
// each pointing at the other host's underlay address (no multicast, no
// learning: two fixed tunnel ends), with overlay addresses on them.
func setupVXLAN(u *Underlay) (Endpoints, error) {
	const vni, port = 42, 4789
	overlay := map[string]netip.Prefix{u.A.NS: netip.MustParsePrefix("10.99.0.1/24"), u.B.NS: netip.MustParsePrefix("10.99.0.2/24")}
	for _, p := range [][2]Host{{u.A, u.B}, {u.B, u.A}} {
		self, peer := p[0], p[1]
		h, err := u.Handle(self.NS)
		if err != nil {
			return Endpoints{}, err
		}
		ul, err := h.LinkByName(self.Link)
		if err != nil {
			return Endpoints{}, fmt.Errorf("netbench: find %s in %s: %w", self.Link, self.NS, err)
		}
		vx := &netlink.Vxlan{
			LinkAttrs:    netlink.LinkAttrs{Name: "vx0", MTU: ul.Attrs().MTU - 50}, // outer IPv4 + UDP + VXLAN + inner Ethernet
			VxlanId:      vni,
			VtepDevIndex: ul.Attrs().Index,
			SrcAddr:      self.Underlay.Addr().AsSlice(),
			Group:        peer.Underlay.Addr().AsSlice(), // a unicast group is the one remote end
			Port:         port,
		}
		if err := h.LinkAdd(vx); err != nil {
			return Endpoints{}, fmt.Errorf("netbench: create a VXLAN device in %s: %w", self.NS, err)
		}
		if err := u.AddrUp(self.NS, "vx0", overlay[self.NS]); err != nil {
			return Endpoints{}, err
		}
	}
	return Endpoints{ServerNS: u.B.NS, ClientNS: u.A.NS, ServerAddr: overlay[u.B.NS].Addr()}, nil
}
