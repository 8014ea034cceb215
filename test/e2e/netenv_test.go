package e2e

// The machine room: physical hosts as network namespaces, each joined by
// a veth pair to a Linux bridge in a namespace of its own (the underlay
// switch), and processes started inside them. Nothing here touches the
// root namespace: its interfaces, routes and addresses stay as they were.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/nsthread"
)

// underlayPrefix is the underlay network; it exists only inside the
// namespaces below. The bridge (where the server listens) is .254, host i
// is .i.
var underlayPrefix = netip.MustParsePrefix("10.255.0.0/24")

func underlayAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 255, 0, byte(i)})
}

// roomTags are the tags of the rooms this process made: what the leak
// check looks for (other test processes on the machine make their own).
var roomTags sync.Map

// ourRoom reports whether a namespace name is of a room this process made.
func ourRoom(name string) bool {
	found := false
	roomTags.Range(func(tag, _ any) bool {
		found = strings.HasPrefix(name, tag.(string)+"-")
		return !found
	})
	return found
}

// machine is a network namespace of the test's own making.
type machine struct {
	name string // under /run/netns
	ns   netns.NsHandle
}

// room is the underlay: a bridge namespace and the hosts' namespaces.
type room struct {
	tag    string // unique to this run, in every name we make
	bridge *machine
	hosts  []*machine
}

// newRoom builds a bridge namespace and n host namespaces, host i with
// underlay address 10.255.0.i on its u0, plugged into the bridge as hI.
func newRoom(t *testing.T, n int) *room {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	r := &room{tag: "ovpce2e-" + hex.EncodeToString(b[:])}
	roomTags.Store(r.tag, true)
	r.bridge = newMachine(t, r.tag+"-br")
	hb, err := netlink.NewHandleAt(r.bridge.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	up(t, hb, "lo")
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := hb.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	addAddr(t, hb, "br0", netip.PrefixFrom(underlayAddr(254), underlayPrefix.Bits()))
	up(t, hb, "br0")
	for i := 1; i <= n; i++ {
		m := newMachine(t, fmt.Sprintf("%s-h%d", r.tag, i))
		port := fmt.Sprintf("h%d", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Index}, PeerName: "u0", PeerNamespace: netlink.NsFd(int(m.ns))}
		if err := hb.LinkAdd(veth); err != nil {
			t.Fatalf("veth to host %d: %v", i, err)
		}
		up(t, hb, port)
		hh, err := netlink.NewHandleAt(m.ns)
		if err != nil {
			t.Fatal(err)
		}
		up(t, hh, "lo")
		addAddr(t, hh, "u0", netip.PrefixFrom(underlayAddr(i), underlayPrefix.Bits()))
		up(t, hh, "u0")
		hh.Close()
		r.hosts = append(r.hosts, m)
	}
	return r
}

// newMachine makes a named namespace and removes it at cleanup (links in
// it go with it).
func newMachine(t *testing.T, name string) *machine {
	t.Helper()
	var h netns.NsHandle
	err := nsthread.Run(func() error {
		var err error
		h, err = netns.NewNamed(name) // moves this thread in; nsthread.Run moves it back
		return err
	})
	if err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("removing namespace %s: %v", name, err)
		}
	})
	return &machine{name: name, ns: h}
}

func up(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkSetUp(l)
	}
	if err != nil {
		t.Fatalf("%s up: %v", name, err)
	}
}

func addAddr(t *testing.T, h *netlink.Handle, name string, p netip.Prefix) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
	}
	if err != nil {
		t.Fatalf("address %v on %s: %v", p, name, err)
	}
}

// proc is a process the test started, and killed by its PID at cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// pids records every process the test started, for the final leak check.
var pids struct {
	mu  sync.Mutex
	all []int
}

// start runs name args inside ns (the process joins ns because it is
// forked from a thread inside it, as `ip netns exec` does, but keeps the
// machine's mount namespace, so the namespaces an agent creates under
// /run/netns are everyone's to see). At t's cleanup it gets SIGTERM, then
// SIGKILL after 5 s.
func start(t *testing.T, ns netns.NsHandle, env []string, name string, args ...string) *proc {
	t.Helper()
	return startFor(t, t, ns, env, name, args...)
}

// startFor is start for a process that outlives test t: owner (a parent
// test) stops it.
func startFor(t, owner *testing.T, ns netns.NsHandle, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name + " " + strings.Join(args, " "), cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Dies with the test binary if it is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := nsthread.In(ns, p.cmd.Start); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	pids.mu.Lock()
	pids.all = append(pids.all, p.cmd.Process.Pid)
	pids.mu.Unlock()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	owner.Cleanup(func() { p.stop(owner) })
	return p
}

// stop ends the process (SIGTERM, then SIGKILL) and waits for it.
func (p *proc) stop(t *testing.T) {
	if t.Failed() {
		defer func() { t.Logf("output of %s:\n%s", p.name, p.out) }()
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s ignored SIGTERM for 5s; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s still runs after %v:\n%s", p.name, d, p.out)
		return -1
	}
}

// run runs a command inside ns to completion.
func run(t *testing.T, ns netns.NsHandle, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := nsthread.In(ns, cmd.Start); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pids.mu.Lock()
	pids.all = append(pids.all, cmd.Process.Pid)
	pids.mu.Unlock()
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
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
