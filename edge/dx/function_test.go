//go:build linux

package dx

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/edge/bgp"
	"github.com/openvpc/openvpc/edge/dx/vlan"
	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/test/dot1q"
	"github.com/openvpc/openvpc/test/frr"
)

// The test binary plays two more parts: the BGP speaker child and the
// edge (a process inside the edge's namespace, as a real edge runs).
const (
	speakerEnv = "OPENVPC_TEST_DX_SPEAKER"
	edgeEnv    = "OPENVPC_TEST_DX_EDGE"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(speakerEnv) == "1":
		if err := bgp.ServeChild(context.Background(), os.Stdin, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case os.Getenv(edgeEnv) != "":
		if err := edgeChild(os.Getenv(edgeEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		os.Exit(m.Run())
	}
}

// report is one line the edge child prints.
type report struct {
	VIF      string         `json:"vif,omitempty"`
	Status   *Status        `json:"status,omitempty"`
	Counters *vlan.Counters `json:"counters,omitempty"`
}

// edgeChild runs the function on port with the VIF sets read from stdin
// (one JSON array a line), printing statuses and counters.
func edgeChild(port string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(r report) { mu.Lock(); _ = enc.Encode(r); mu.Unlock() }
	exe, _ := os.Executable()
	f, err := New(Config{Port: port, Namespaces: os.Getenv("OPENVPC_TEST_DX_NS"),
		SpeakerCommand: func() *exec.Cmd {
			c := exec.Command(exe, "-test.run=^$")
			c.Env = append(os.Environ(), speakerEnv+"=1", edgeEnv+"=")
			return c
		},
		OnStatus: func(id string, st Status) { emit(report{VIF: id, Status: &st}) },
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	go func() {
		r := bufio.NewScanner(os.Stdin)
		for r.Scan() {
			var vifs []VIF
			if err := json.Unmarshal(r.Bytes(), &vifs); err != nil {
				fmt.Fprintln(os.Stderr, "bad VIF set:", err)
				continue
			}
			if err := f.Set(vifs); err != nil {
				fmt.Fprintln(os.Stderr, "set:", err)
			}
		}
	}()
	go func() {
		for ctx.Err() == nil {
			c := f.Counters()
			emit(report{Counters: &c})
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return f.Run(ctx)
}

func need(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if !frr.Available() {
		missing = append(missing, "frr")
	}
	for _, tool := range []string{"ping", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatalf("OPENVPC_E2E=1 but this machine lacks %s", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

// lab is the test's namespaces, each named with the run's tag.
type lab struct {
	t   *testing.T
	tag string
}

func (l *lab) ns(name string) string {
	full := l.tag + "-" + name
	if err := newNamespace(full); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = netns.DeleteNamed(full) })
	l.in(full, func() error {
		// No IPv6 chatter from the lab's own links: every untagged frame
		// on the wire is then a fault.
		for _, k := range []string{"all", "default"} {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	return full
}

func (l *lab) in(ns string, fn func() error) {
	l.t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		l.t.Fatal(err)
	}
	defer h.Close()
	if err := nsthread.In(h, fn); err != nil {
		l.t.Fatalf("in %s: %v", ns, err)
	}
}

// veth joins a:an to b:bn (both up, no IPv6); master, when set, is a
// bridge in b that bn joins.
func (l *lab) veth(a, an, b, bn, master string) {
	nb, err := netns.GetFromName(b)
	if err != nil {
		l.t.Fatal(err)
	}
	defer nb.Close()
	l.in(a, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(int(nb))}); err != nil {
			return err
		}
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+an+"/disable_ipv6", []byte("1"), 0)
		ln, err := netlink.LinkByName(an)
		if err == nil {
			err = netlink.LinkSetUp(ln)
		}
		return err
	})
	l.in(b, func() error {
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+bn+"/disable_ipv6", []byte("1"), 0)
		ln, err := netlink.LinkByName(bn)
		if err != nil {
			return err
		}
		if master != "" {
			br, err := netlink.LinkByName(master)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(ln, br); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(ln)
	})
}

func (l *lab) addr(ns, dev, p string) {
	pf := netip.MustParsePrefix(p)
	l.in(ns, func() error {
		ln, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(ln, &netlink.Addr{IPNet: &net.IPNet{IP: pf.Addr().AsSlice(), Mask: net.CIDRMask(pf.Bits(), 32)}})
	})
}

// tagLink makes ns's dev a VLAN vid link with the independent test helper.
func (l *lab) tagLink(ns, dev string, vid uint16) {
	l.in(ns, func() error {
		ln, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		tg, err := dot1q.Link(ln.Attrs().Index, vid)
		if err != nil {
			return err
		}
		l.t.Cleanup(func() { tg.Close() })
		return nil
	})
}

// start runs cmd from a thread inside ns; it is killed by PID at cleanup.
func (l *lab) start(ns string, cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	l.in(ns, cmd.Start)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	l.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func (l *lab) run(ns string, name string, args ...string) (string, error) {
	var out []byte
	var err error
	l.in(ns, func() error {
		out, err = exec.Command(name, args...).CombinedOutput()
		return nil
	})
	return string(out), err
}

// edgeView follows what the edge child reports.
type edgeView struct {
	mu       sync.Mutex
	status   map[string]Status
	counters vlan.Counters
	stdin    io.Writer
}

func (e *edgeView) read(r io.Reader) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		var rep report
		if json.Unmarshal(s.Bytes(), &rep) != nil {
			continue
		}
		e.mu.Lock()
		if rep.Status != nil {
			e.status[rep.VIF] = *rep.Status
		}
		if rep.Counters != nil {
			e.counters = *rep.Counters
		}
		e.mu.Unlock()
	}
}

func (e *edgeView) get(id string) Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status[id]
}

func (e *edgeView) count() vlan.Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counters
}

func (e *edgeView) set(t *testing.T, vifs []VIF) {
	b, _ := json.Marshal(vifs)
	if _, err := e.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, d time.Duration, ok func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n%s", what, d, why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func routerConf(asn uint32, self, peer netip.Addr, key string, network string) string {
	return fmt.Sprintf(`router bgp %d
 bgp router-id %v
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor %v remote-as 64512
 neighbor %v password %s
 neighbor %v timers 3 9
 neighbor %v timers connect 1
 address-family ipv4 unicast
  network %s
 exit-address-family
`, asn, self, peer, peer, key, peer, peer, network)
}

// TestFunctionTwoVIFs: one port, two VIFs on VLANs 101 and 102 to two
// FRR routers behind a switch, the routers tagging with the independent
// test helper and using the very same peer addresses: each session
// establishes with MD5 and learns only its own router's prefix, each
// router gets only its VIF's announcement; tshark on the port's wire sees
// only 802.1Q frames of those VLANs (and the rogue one) and no untagged
// IP; a router on VLAN 999 is dropped and counted; removing the VIFs
// removes their namespaces.
func TestFunctionTwoVIFs(t *testing.T) {
	need(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &lab{t: t, tag: "ovpcdx-" + hex.EncodeToString(b[:])}
	edgeNS, sw := l.ns("edge"), l.ns("sw")
	l.in(sw, func() error {
		// No multicast snooping: a snooping bridge joins 224.0.0.106 and
		// reports it untagged from 0.0.0.0, chatter a real switch's port
		// would not put on the customer's wire.
		snoop := false
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, MulticastSnooping: &snoop}); err != nil {
			return err
		}
		br, err := netlink.LinkByName("br0")
		if err == nil {
			err = netlink.LinkSetUp(br)
		}
		return err
	})
	l.veth(edgeNS, "port", sw, "edge", "br0")
	amazon, customer := netip.MustParsePrefix("169.254.10.1/30"), netip.MustParsePrefix("169.254.10.2/30")
	const key101, key102 = "key-one-101", "key-two-102"
	routers := map[uint16]string{}
	frrs := map[uint16]*frr.Router{}
	for _, r := range []struct {
		vid     uint16
		asn     uint32
		key     string
		network string
	}{{101, 65101, key101, "192.0.2.0/24"}, {102, 65102, key102, "198.51.100.0/24"}, {999, 65999, "whatever", "203.0.113.0/24"}} {
		ns := l.ns(fmt.Sprintf("r%d", r.vid))
		routers[r.vid] = ns
		l.veth(ns, "eth1", sw, fmt.Sprintf("r%d", r.vid), "br0")
		l.addr(ns, "eth1", customer.String())
		l.tagLink(ns, "eth1", r.vid)
		if r.vid != 999 {
			frrs[r.vid] = frr.Start(t, "/run/netns/"+ns, routerConf(r.asn, customer.Addr(), amazon.Addr(), r.key, r.network))
		}
	}
	// Capture the wire between the port and the switch.
	pcap := filepath.Join(t.TempDir(), "port.pcap")
	_ = os.Chmod(filepath.Dir(pcap), 0o777)
	tshark := exec.Command("tshark", "-q", "-i", "edge", "-w", pcap)
	tshark.Env = append(os.Environ(), "TMPDIR="+filepath.Dir(pcap))
	l.start(sw, tshark)
	time.Sleep(time.Second) // tshark starts capturing

	// The edge.
	edge := exec.Command(os.Args[0], "-test.run=^$")
	edge.Env = append(os.Environ(), edgeEnv+"=port", "OPENVPC_TEST_DX_NS="+l.tag+"-e")
	edge.Stderr = os.Stderr
	stdin, _ := edge.StdinPipe()
	stdout, _ := edge.StdoutPipe()
	view := &edgeView{status: map[string]Status{}, stdin: stdin}
	l.start(edgeNS, edge)
	go view.read(stdout)
	vifs := []VIF{
		{ID: "dxvif-0000000000000101", VLAN: 101, LocalASN: 64512, PeerASN: 65101, Local: amazon, Peer: customer, AuthKey: key101, Hold: 9 * time.Second, Announce: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}},
		{ID: "dxvif-0000000000000102", VLAN: 102, LocalASN: 64512, PeerASN: 65102, Local: amazon, Peer: customer, AuthKey: key102, Hold: 9 * time.Second, Announce: []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}},
	}
	view.set(t, vifs)
	t0 := time.Now()
	for _, v := range vifs {
		eventually(t, v.ID+" established with a learned prefix", 20*time.Second, func() bool {
			st := view.get(v.ID)
			return st.BGP.State == bgp.Established && len(st.BGP.Learned) > 0
		}, func() string { return fmt.Sprintf("%+v; counters %+v", view.get(v.ID), view.count()) })
	}
	t.Logf("both sessions established in %v", time.Since(t0).Round(time.Millisecond))
	if got := view.get(vifs[0].ID).BGP.Learned; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}) {
		t.Errorf("VLAN 101 learned %v, want only its router's 192.0.2.0/24", got)
	}
	if got := view.get(vifs[1].ID).BGP.Learned; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}) {
		t.Errorf("VLAN 102 learned %v, want only its router's 198.51.100.0/24", got)
	}
	// Each router has its own VIF's announcement, and not the other's.
	for vid, want := range map[uint16][2]string{101: {"10.20.0.0/16", "10.30.0.0/16"}, 102: {"10.30.0.0/16", "10.20.0.0/16"}} {
		r := frrs[vid]
		eventually(t, fmt.Sprintf("router %d has %s", vid, want[0]), 10*time.Second, func() bool {
			rs, _ := r.Routes()
			return slices.Contains(rs, netip.MustParsePrefix(want[0]))
		}, func() string { s, _ := r.VTY("show bgp ipv4 unicast"); return s })
		if rs, _ := r.Routes(); slices.Contains(rs, netip.MustParsePrefix(want[1])) {
			t.Errorf("router %d got the other VIF's %s: %v", vid, want[1], rs)
		}
	}
	// ping over each VLAN reaches that VIF's own stack.
	for _, vid := range []uint16{101, 102} {
		if out, err := l.run(routers[vid], "ping", "-c", "2", "-i", "0.2", "-W", "1", amazon.Addr().String()); err != nil {
			t.Errorf("ping over VLAN %d: %v\n%s", vid, err, out)
		}
	}
	// A router on VLAN 999, which no VIF has: dropped and counted.
	before := view.count().UnknownVLAN
	if out, err := l.run(routers[999], "ping", "-c", "3", "-i", "0.2", "-W", "1", amazon.Addr().String()); err == nil {
		t.Errorf("VLAN 999 reached a VIF:\n%s", out)
	}
	eventually(t, "unknown-VLAN frames counted", 3*time.Second, func() bool { return view.count().UnknownVLAN > before }, func() string { return fmt.Sprintf("%+v", view.count()) })

	// Every frame on the wire is tagged with a VLAN that exists here.
	time.Sleep(500 * time.Millisecond)
	_ = tshark.Process.Signal(syscall.SIGINT)
	time.Sleep(time.Second)
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "vlan.id", "-e", "eth.type", "-e", "ip.src", "-e", "eth.src", "-e", "frame.protocols").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	vids := map[string]int{}
	untaggedIP := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 {
			continue
		}
		vid := f[0]
		if vid == "" {
			t.Logf("untagged frame: %q", line)
			if len(f) > 2 && f[2] != "" {
				untaggedIP++
			}
			vids["untagged"]++
			continue
		}
		vids[vid]++
	}
	t.Logf("frames on the wire by VLAN: %v", vids)
	if untaggedIP > 0 || vids["untagged"] > 0 {
		t.Errorf("untagged frames on the port (%d with IP): %v", untaggedIP, vids)
	}
	for v := range vids {
		if v != "101" && v != "102" && v != "999" {
			t.Errorf("frames of VLAN %s on the wire", v)
		}
	}
	if vids["101"] == 0 || vids["102"] == 0 {
		t.Errorf("no frames of VLAN 101 or 102 captured: %v", vids)
	}

	// Taking the VIFs away removes their namespaces.
	view.set(t, nil)
	eventually(t, "VIF namespaces removed", 10*time.Second, func() bool {
		_, err1 := os.Stat("/run/netns/" + l.tag + "-e-v101")
		_, err2 := os.Stat("/run/netns/" + l.tag + "-e-v102")
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	}, func() string { return "still there" })
	if st := view.get(vifs[0].ID); st.BGP.State == bgp.Established {
		t.Errorf("VIF 101 still established after removal: %+v", st)
	}
}
