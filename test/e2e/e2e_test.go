package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/host/nic"
)

// serveEnv, when set, turns the test binary into a tiny HTTP server on
// that address: what the tests curl inside an instance, without needing
// python or busybox there.
const serveEnv = "OPENVPC_E2E_SERVE_HTTP"

var bin string // the openvpc binary

func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		serveHTTP(addr)
		return
	}
	if addr := os.Getenv(serveDNSEnv); addr != "" {
		serveDNS(addr)
		return
	}
	if spec := os.Getenv(sendUDPEnv); spec != "" {
		sendUDP(spec)
		return
	}
	if addr := os.Getenv(udpSinkEnv); addr != "" {
		udpSink(addr)
		return
	}
	if addr := os.Getenv(udpEchoEnv); addr != "" {
		udpEcho(addr)
		return
	}
	if spec := os.Getenv(udpRTTEnv); spec != "" {
		udpRTT(spec)
		return
	}
	if spec := os.Getenv(churnEnv); spec != "" {
		churnMappings(spec)
		return
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // every test skips or fails on its own
	}
	dir, err := os.MkdirTemp("", "openvpc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bin = filepath.Join(dir, "openvpc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/openvpc/openvpc/cmd/openvpc").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/openvpc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bigSize is the size of the HTTP server's /big.
const bigSize = 24 << 20

func serveHTTP(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			// A long download: bigSize bytes of a pattern the client can check.
			w.Header().Set("Content-Length", strconv.Itoa(bigSize))
			chunk := []byte(strings.Repeat("openvpc!", 8192))
			for n := 0; n < bigSize; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s to %s\n", addr, host)
	}))
}

// prerequisites skips the test, or fails it under OPENVPC_E2E=1 (CI),
// when this machine cannot run it.
func prerequisites(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if !nic.TUNAvailable() && os.Geteuid() == 0 {
		missing = append(missing, nic.TUNDevicePath)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatalf("OPENVPC_E2E=1 but this machine lacks %s (install iperf3, curl, iputils-ping, tshark; run as root)", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

// cloud is a server and host agents on the room's machines.
type cloud struct {
	t      *testing.T // the (sub)test that checks
	root   *testing.T // the test that owns the processes
	room   *room
	url    string
	agents []*proc
	dirs   []string // the agents' state directories
	certs  []string // the agents' credentials directories
	// config is the client config the server wrote (CA, admin token).
	config string
	// nicArgs are the agents' NIC flags; {underlay} in them is the
	// agent's underlay address.
	nicArgs []string
}

// serverPort is where the server listens on the bridge: the namespace is
// the test's own, so any fixed port is free.
const serverPort = 7070

func newCloud(t *testing.T, hosts int) *cloud { return newCloudWith(t, hosts, 0) }

// newCloudWith is newCloud with spare machines on the underlay (room
// hosts hosts+1 … hosts+spare, no agent on them) and more server flags.
func newCloudWith(t *testing.T, hosts, spare int, serverArgs ...string) *cloud {
	return newCloudNIC(t, hosts, spare, []string{"--nic", "tun"}, serverArgs...)
}

// newCloudNIC is newCloudWith with the agents' NIC flags (--nic tun, or
// --nic veth and its fast-path flags).
func newCloudNIC(t *testing.T, hosts, spare int, nicArgs []string, serverArgs ...string) *cloud {
	r := newRoom(t, hosts+spare)
	addr := net.JoinHostPort(underlayAddr(254).String(), strconv.Itoa(serverPort))
	c := &cloud{t: t, root: t, room: r, url: "https://" + addr, config: filepath.Join(t.TempDir(), "config"), nicArgs: nicArgs}
	args := append([]string{"server", "--listen", addr, "--data-dir", t.TempDir(), "--log-level", "warn", "--admin-config", c.config}, serverArgs...)
	start(t, r.bridge.ns, nil, bin, args...)
	c.eventually("the server to answer", 30*time.Second, func() bool { _, code := c.cli("vpc", "list"); return code == 0 })
	for i := range r.hosts[:hosts] {
		c.dirs = append(c.dirs, t.TempDir())
		c.certs = append(c.certs, t.TempDir())
		c.agents = append(c.agents, c.startAgent(i))
	}
	c.eventually("every host to register", 15*time.Second, func() bool {
		out, _ := c.cli("host", "list")
		return strings.Count(out, "reachable") >= hosts
	})
	return c
}

// in is c for subtest t: failures are t's, processes still the root's.
func (c *cloud) in(t *testing.T) *cloud {
	cc := *c
	cc.t = t
	return &cc
}

func hostID(i int) string { return fmt.Sprintf("e2e-h%d", i+1) }

// startAgent runs `openvpc host run --nic tun` on host i: joining with a
// token the first time, with the certificate it kept after that.
func (c *cloud) startAgent(i int) *proc {
	u := underlayAddr(i + 1).String()
	args := []string{"host", "run", "--server", c.url, "--host-id", hostID(i), "--underlay", u}
	for _, a := range c.nicArgs {
		args = append(args, strings.ReplaceAll(a, "{underlay}", u)) // e.g. --metrics {underlay}:9100
	}
	args = append(args, "--state-dir", c.dirs[i], "--api", u+":0", "--log-level", "warn")
	return startFor(c.t, c.root, c.room.hosts[i].ns, nil, bin, append(args, c.join(c.certs[i], "host")...)...)
}

// join is the flags an agent keeping its credentials in dir joins with: a
// fresh token while dir holds no certificate.
func (c *cloud) join(dir, role string) []string {
	args := []string{"--cert-dir", dir}
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err != nil {
		args = append(args, "--join-token", strings.TrimSpace(c.ok("token", "create", "--role", role)))
	}
	return args
}

// cli runs an openvpc client command from the bridge namespace, where
// the server is reachable.
func (c *cloud) cli(args ...string) (string, int) {
	c.t.Helper()
	return run(c.t, c.room.bridge.ns, 30*time.Second, bin, append([]string{"--server", c.url, "--config", c.config}, args...)...)
}

func (c *cloud) ok(args ...string) string {
	c.t.Helper()
	out, code := c.cli(args...)
	if code != 0 {
		c.t.Fatalf("openvpc %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func okJSON[T any](c *cloud, args ...string) T {
	c.t.Helper()
	var v T
	out := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("openvpc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// exec runs a command inside an instance, through `openvpc exec`.
func (c *cloud) exec(inst string, timeout time.Duration, cmd ...string) (string, int) {
	c.t.Helper()
	return run(c.t, c.room.bridge.ns, timeout, bin, append([]string{"--server", c.url, "--config", c.config, "exec", inst, "--"}, cmd...)...)
}

// background starts a long-running command inside an instance.
func (c *cloud) background(inst string, env []string, cmd ...string) *proc {
	c.t.Helper()
	return startFor(c.t, c.root, c.room.bridge.ns, env, bin, append([]string{"--server", c.url, "--config", c.config, "exec", inst, "--"}, cmd...)...)
}

func (c *cloud) eventually(what string, d time.Duration, ok func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s", d, what)
		}
	}
}

type instanceJ struct {
	ID        string `json:"id"`
	PrivateIP string `json:"privateIp"`
}

type vpcJ struct {
	VNI              uint32 `json:"vni"`
	MainRouteTableID string `json:"mainRouteTableId"`
	DefaultSG        string `json:"defaultSecurityGroupId"`
}

type eventJ struct {
	Reason   string `json:"reason"`
	InnerSrc string `json:"innerSrc"`
	InnerDst string `json:"innerDst"`
	Count    int64  `json:"count"` // a JSON number: -o json prints numbers as numbers
}

func (c *cloud) instance(subnet, name string, host int) instanceJ {
	c.t.Helper()
	return okJSON[instanceJ](c, "instance", "run", "--subnet", subnet, "--name", name, "--host", hostID(host), "--wait")
}

func (c *cloud) vpc(name, cidr, subnet string) vpcJ {
	c.t.Helper()
	c.ok("vpc", "create", "--name", name, "--cidr", cidr)
	c.ok("subnet", "create", "--vpc", name, "--cidr", subnet, "--name", name+"-a")
	return okJSON[vpcJ](c, "vpc", "get", name)
}

// TestLinuxInstances runs real programs in TUN instances on two host
// processes, each in its own namespace on a bridged underlay: ping,
// curl, iperf3 within a VPC and across a peering, isolation without one,
// a spoofed source caught, the wire format as tshark reads it, an agent
// killed and restarted, and nothing left behind.
func TestLinuxInstances(t *testing.T) { linuxInstances(t, "--nic", "tun") }

// linuxInstances is TestLinuxInstances with agents running with nicArgs.
func linuxInstances(t *testing.T, nicArgs ...string) {
	prerequisites(t, "ping", "curl", "iperf3", "tshark")
	ours := leakCheck(t) // registered first: runs after every other cleanup
	c := newCloudNIC(t, 2, 0, nicArgs)
	ours.dirs = c.dirs
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	blue := c.vpc("blue", "10.1.0.0/16", "10.1.1.0/24")
	c.vpc("green", "10.2.0.0/16", "10.2.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	bl := c.instance("blue-a", "c", 1)
	g := c.instance("green-a", "d", 0)
	ours.instances = []string{a.ID, b.ID, bl.ID, g.ID}
	pcx := okJSON[struct {
		ID string `json:"id"`
	}](c, "peering", "create", "--vpc", "red", "--peer-vpc", "blue")
	c.ok("peering", "accept", pcx.ID)
	c.ok("route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", pcx.ID)
	c.ok("route", "create", "--route-table", blue.MainRouteTableID, "--dest", "10.0.0.0/16", "--target", pcx.ID)
	// A default group admits only its own members: let the peer in.
	c.ok("sg", "authorize", red.DefaultSG, "--proto", "all", "--cidr", "10.1.0.0/16")
	c.ok("sg", "authorize", blue.DefaultSG, "--proto", "all", "--cidr", "10.0.0.0/16")

	t.Run("namespaces", func(t *testing.T) {
		c := c.in(t)
		for _, inst := range []instanceJ{a, b, bl, g} {
			if _, err := os.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(inst.ID))); err != nil {
				t.Errorf("instance %s: %v", inst.ID, err)
			}
		}
		out, _ := c.exec("a", 5*time.Second, "cat", "/proc/net/route")
		// The default route (destination 00000000) goes via the gateway 10.0.1.1 (0101000A).
		if !strings.Contains(out, nic.DeviceName+"\t00000000\t0101000A") {
			t.Errorf("instance a has no default route via 10.0.1.1:\n%s", out)
		}
	})

	t.Run("ping", func(t *testing.T) {
		c := c.in(t)
		c.mustPing("a", b.PrivateIP)
		c.mustPing("b", a.PrivateIP)
		// The agent API acts as the instance inside its namespace too.
		if out := c.ok("ping", "a", "b", "-c", "2"); !strings.Contains(out, "2 received") {
			t.Errorf("openvpc ping a b:\n%s", out)
		}
	})

	t.Run("curl", func(t *testing.T) {
		c := c.in(t)
		c.httpServer("b", b.PrivateIP)
		c.mustCurl("a", b.PrivateIP, a.PrivateIP)
		if out := c.ok("connect", "a", b.PrivateIP+":8080"); !strings.Contains(out, "connected") {
			t.Errorf("openvpc connect:\n%s", out)
		}
	})

	t.Run("iperf3", func(t *testing.T) {
		c := c.in(t)
		c.iperf("a", "b", b.PrivateIP)
	})

	t.Run("peered", func(t *testing.T) {
		c := c.in(t)
		c.mustPing("a", bl.PrivateIP)
		c.httpServer("c", bl.PrivateIP)
		c.mustCurl("a", bl.PrivateIP, a.PrivateIP)
		c.iperf("a", "c", bl.PrivateIP)
	})

	t.Run("not peered", func(t *testing.T) {
		c := c.in(t)
		for _, p := range [][2]string{{"a", g.PrivateIP}, {"d", a.PrivateIP}, {"d", bl.PrivateIP}} {
			if out, code := c.exec(p[0], 10*time.Second, "ping", "-c", "1", "-W", "1", p[1]); code == 0 {
				t.Errorf("%s reached %s without a peering:\n%s", p[0], p[1], out)
			}
		}
	})

	t.Run("spoofing", func(t *testing.T) {
		c := c.in(t)
		c.spoof(a, b)
	})

	t.Run("tshark", func(t *testing.T) {
		c := c.in(t)
		c.wire(red.VNI, a, b)
	})

	t.Run("agent crash", func(t *testing.T) {
		c := c.in(t)
		c.crash(a, b, g)
	})
}

// mustPing pings to from inside instance from, with the system's ping.
func (c *cloud) mustPing(from, to string) {
	c.t.Helper()
	if out, code := c.exec(from, 15*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", to); code != 0 || !strings.Contains(out, " 0% packet loss") {
		c.t.Fatalf("ping from %s to %s: exit %d\n%s", from, to, code, out)
	}
}

// httpServer serves HTTP on ip:8080 inside instance inst until cleanup.
func (c *cloud) httpServer(inst, ip string) {
	c.t.Helper()
	self, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	p := c.background(inst, []string{serveEnv + "=" + ip + ":8080"}, self)
	c.eventually("the HTTP server in "+inst, 10*time.Second, func() bool {
		_, code := c.exec(inst, 5*time.Second, "curl", "-s", "-o", "/dev/null", "http://"+ip+":8080/")
		select {
		case <-p.done:
			c.t.Fatalf("HTTP server in %s exited:\n%s", inst, p.out)
		default:
		}
		return code == 0
	})
}

func (c *cloud) mustCurl(from, to, fromIP string) {
	c.t.Helper()
	out, code := c.exec(from, 15*time.Second, "curl", "-sS", "--max-time", "5", "http://"+to+":8080/")
	if want := fmt.Sprintf("hello from %s:8080 to %s", to, fromIP); code != 0 || !strings.Contains(out, want) {
		c.t.Fatalf("curl from %s to %s: exit %d, want %q:\n%s", from, to, code, want, out)
	}
}

// iperf runs iperf3 for 5 s from instance from to the server in instance
// to at ip, and logs and returns the rate (Gbit/s).
func (c *cloud) iperf(from, to, ip string) float64 {
	c.t.Helper()
	srv := c.background(to, nil, "iperf3", "-s", "-1", "-B", ip, "-p", "5201")
	var out string
	var code int
	c.eventually("iperf3 to start", 10*time.Second, func() bool {
		out, code = c.exec(from, 30*time.Second, "iperf3", "-c", ip, "-p", "5201", "-t", "5", "-J")
		return !strings.Contains(out, "Connection refused")
	})
	if code != 0 {
		c.t.Fatalf("iperf3 from %s to %s: exit %d\n%s", from, to, code, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	gbps := r.End.SumReceived.BitsPerSecond / 1e9
	c.t.Logf("iperf3 %s → %s (TCP, 1 stream, 5 s): %.2f Gbit/s, %d retransmits", from, to, gbps, r.End.SumSent.Retransmits)
	if gbps < 0.05 {
		c.t.Errorf("iperf3 %s → %s: %.3f Gbit/s is not a working path", from, to, gbps)
	}
	srv.wait(c.t, 10*time.Second)
	return gbps
}

// spoof: instance a sends from an address it does not own. Its host drops
// the packet before the wire, b never sees it, and one spoofed-source
// event is raised.
func (c *cloud) spoof(a, b instanceJ) {
	t := c.t
	forged := "10.0.1.99"
	h, err := netns.GetFromName(nic.NamespaceName(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	addAddr(t, nl, nic.DeviceName, netip.MustParsePrefix(forged+"/32"))
	before := c.echoesReceived("b")
	if out, code := c.exec("a", 10*time.Second, "ping", "-c", "1", "-W", "1", "-I", forged, b.PrivateIP); code == 0 {
		t.Fatalf("a spoofing %s got a reply from b:\n%s", forged, out)
	}
	var spoofed []eventJ
	c.eventually("a spoofed-source event", 10*time.Second, func() bool {
		spoofed = spoofed[:0]
		for _, e := range okJSON[[]eventJ](c, "events") {
			if e.Reason == "spoofed-source" && e.InnerSrc == forged {
				spoofed = append(spoofed, e)
			}
		}
		return len(spoofed) > 0
	})
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	spoofed = slices.DeleteFunc(okJSON[[]eventJ](c, "events"), func(e eventJ) bool { return e.Reason != "spoofed-source" || e.InnerSrc != forged })
	if len(spoofed) != 1 || spoofed[0].Count != 1 || spoofed[0].InnerDst != b.PrivateIP {
		t.Errorf("want exactly one spoofed-source event %s → %s, count 1; got %+v", forged, b.PrivateIP, spoofed)
	}
	if after := c.echoesReceived("b"); after != before {
		t.Errorf("b received %d echo requests during the spoofing", after-before)
	}
}

// echoesReceived reads the instance kernel's count of ICMP echo requests.
func (c *cloud) echoesReceived(inst string) int {
	c.t.Helper()
	out, code := c.exec(inst, 5*time.Second, "cat", "/proc/net/snmp")
	if code != 0 {
		c.t.Fatalf("reading /proc/net/snmp in %s:\n%s", inst, out)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		if i := slices.Index(names, "InEchos"); i > 0 && i < len(fields) {
			n, _ := strconv.Atoi(fields[i])
			return n
		}
	}
	c.t.Fatalf("no Icmp InEchos in /proc/net/snmp of %s:\n%s", inst, out)
	return 0
}

// wire captures on the bridge port of host 1 while a pings and curls b,
// and checks what tshark decodes: Geneve with the VPC's VNI and our
// SourceVPC option around the instances' ICMP and TCP. tshark decodes
// live and may start capturing a little after it says so, so traffic
// repeats until the capture shows it (or 20 s pass).
func (c *cloud) wire(vni uint32, a, b instanceJ) {
	t := c.t
	capture := start(t, c.room.bridge.ns, []string{"TMPDIR=" + t.TempDir()}, "tshark", "-i", "h1", "-l", "-f", "udp port 6081",
		"-T", "fields", "-E", "separator=|",
		"-e", "geneve.vni", "-e", "geneve.option.class", "-e", "geneve.option.type", "-e", "ip.src", "-e", "icmp.type", "-e", "tcp.dstport")
	c.eventually("tshark to capture", 15*time.Second, func() bool { return strings.Contains(capture.out.String(), "Capturing on") })
	var requests, replies, tcp int
	decode := func() {
		requests, replies, tcp = 0, 0, 0
		for _, line := range strings.Split(capture.out.String(), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 6 || f[0] == "" {
				continue
			}
			if v, _ := strconv.ParseUint(f[0], 0, 32); v != uint64(vni) {
				continue
			}
			if !strings.Contains(f[1], "0xfff0") && !strings.Contains(f[1], "65520") || !(strings.HasPrefix(f[2], "0x01") || f[2] == "1") {
				t.Fatalf("Geneve without the SourceVPC option (class 0xfff0, type 1): %q", line)
			}
			// ip.src lists the outer then the inner source.
			switch {
			case strings.HasSuffix(f[3], ","+a.PrivateIP) && f[4] == "8":
				requests++
			case strings.HasSuffix(f[3], ","+b.PrivateIP) && f[4] == "0":
				replies++
			case strings.HasSuffix(f[3], ","+a.PrivateIP) && f[5] == "8080":
				tcp++
			}
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		decode()
		if requests > 0 && replies > 0 && tcp > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark decoded %d ICMP echo requests from a, %d replies from b, %d TCP packets from a to port 8080 in Geneve VNI %d; want some of each:\n%s",
				requests, replies, tcp, vni, capture.out)
		}
		if requests == 0 || replies == 0 {
			c.exec("a", 5*time.Second, "ping", "-c", "1", "-W", "1", b.PrivateIP)
		}
		if tcp == 0 {
			c.exec("a", 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "3", "http://"+b.PrivateIP+":8080/")
		}
		time.Sleep(200 * time.Millisecond)
	}
	capture.stop(t)
}

// crash kills host 1's agent with SIGKILL. Its instances' namespaces
// stay (processes in them keep running); meanwhile d is terminated. The
// restarted agent adopts a's namespace (a works again) and removes d's.
func (c *cloud) crash(a, b, d instanceJ) {
	t := c.t
	nsOf := func(inst instanceJ) (uint64, error) {
		var st syscall.Stat_t
		err := syscall.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(inst.ID)), &st)
		return st.Ino, err // the namespace's own inode, through its bind mount
	}
	before, err := nsOf(a)
	if err != nil {
		t.Fatal(err)
	}
	c.agents[0].kill()
	for _, inst := range []instanceJ{a, d} {
		if _, err := nsOf(inst); err != nil {
			t.Fatalf("after kill -9 the namespace of %s is gone: %v", inst.ID, err)
		}
	}
	c.ok("instance", "terminate", "d")
	c.agents[0] = c.startAgent(0)
	c.eventually("a to work again after the restart", 20*time.Second, func() bool {
		_, code := c.exec("a", 5*time.Second, "ping", "-c", "1", "-W", "1", b.PrivateIP)
		return code == 0
	})
	if after, err := nsOf(a); err != nil || after != before {
		t.Errorf("a's namespace was replaced, not adopted (inode %d, then %d, %v): what ran inside it lost its network", before, after, err)
	}
	c.eventually("d's namespace to be removed", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(d.ID)))
		return err != nil
	})
	c.ok("instance", "terminate", "a", "--wait")
	c.eventually("a's namespace to be removed", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(a.ID)))
		return err != nil
	})
}

// leaks is what the test made, to check nothing of it survives.
type leaks struct {
	instances []string
	dirs      []string
}

// leakCheck registers, before anything else, a cleanup that runs after
// all others: no instance namespace, no namespace or link of the room,
// no process the test started may remain.
func leakCheck(t *testing.T) *leaks {
	l := &leaks{}
	rootLinks := linkNames(t)
	t.Cleanup(func() {
		for _, id := range l.instances {
			if _, err := os.Stat(filepath.Join(nic.NetnsDir, nic.NamespaceName(id))); err == nil {
				t.Errorf("namespace %s survived the test", nic.NamespaceName(id))
			}
			if _, err := os.Stat(filepath.Join(nic.EtcNetnsDir, nic.NamespaceName(id))); err == nil {
				t.Errorf("%s survived the test", filepath.Join(nic.EtcNetnsDir, nic.NamespaceName(id)))
			}
		}
		for _, d := range l.dirs {
			if b, err := os.ReadFile(filepath.Join(d, "namespaces")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				t.Errorf("state dir %s still lists namespaces after the agents stopped:\n%s", d, b)
			}
		}
		entries, _ := os.ReadDir(nic.NetnsDir)
		for _, e := range entries {
			if ourRoom(e.Name()) { // other test processes' rooms are theirs to check
				t.Errorf("namespace %s survived the test", e.Name())
			}
		}
		for _, name := range linkNames(t) {
			if !slices.Contains(rootLinks, name) {
				t.Errorf("link %s appeared in the root namespace", name)
			}
		}
		pids.mu.Lock()
		defer pids.mu.Unlock()
		for _, pid := range pids.all {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("process %d survived the test", pid)
			}
		}
	})
	return l
}

func linkNames(t *testing.T) []string {
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	return names
}
