package main

// Tests of what a new user tripped over (issue 20): each fails on the
// binary as it was before its fix.

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUnknownCommands: a mistyped verb is an error (exit 1) that suggests
// the right one, not a help page and exit 0; a group alone still shows its
// help.
func TestUnknownCommands(t *testing.T) {
	cases := []struct {
		args  []string
		wants []string
	}{
		{[]string{"vpc", "remove", "red"}, []string{`unknown command "remove"`, "openvpc vpc", "did you mean delete?"}},
		{[]string{"instance", "delete", "web"}, []string{`unknown command "delete"`, "did you mean terminate?"}},
		{[]string{"subnet", "ls"}, []string{"did you mean list?"}},
		{[]string{"vpcc", "list"}, []string{`unknown command "vpcc"`, "did you mean vpc or vpn?"}},
		{[]string{"route", "frobnicate"}, []string{`unknown command "frobnicate"`, "openvpc route --help"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			checkFailure(t, r, "", tc.wants, tc.args)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1", r.code)
			}
		})
	}
	t.Run("a group alone shows its help", func(t *testing.T) {
		r := runCLI(t, nil, "vpc")
		if r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
			t.Errorf("openvpc vpc: want its help and exit 0, got %s", r)
		}
	})
}

// TestPlainHTTPHint: pointing the client at the TLS API with http:// says
// that the API is https, not "unexpected EOF".
func TestPlainHTTPHint(t *testing.T) {
	s := startServer(t, t.TempDir())
	args := []string{"--server", "http://" + s.addr, "vpc", "list"}
	r := runCLI(t, s.env(), args...)
	checkFailure(t, r, "", []string{"https", "--server https://" + s.addr, "--insecure-loopback"}, args)
}

// TestInsideTheVPC: what happens inside a VPC is reported as such, and a
// packet that does not arrive makes ping and trace exit non-zero.
func TestInsideTheVPC(t *testing.T) {
	s := startServer(t, t.TempDir())
	port := freeUDPPort(t)
	startHost(t, s, "host-a", "127.0.1.1", port)
	startHost(t, s, "host-b", "127.0.1.2", port)
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	s.ok(t, "instance", "run", "--subnet", "red-a", "--name", "app", "--host", "host-a", "--wait")
	web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-b", "--wait")

	// As root the hosts run TUN instances, whose refused connection the
	// agent reports as "dial tcp …": that is web's stack saying no, not
	// the openvpc server being away.
	t.Run("connect to a closed port", func(t *testing.T) {
		args := []string{"connect", "app", "web:80"}
		r := s.run(t, args...)
		checkFailure(t, r, "unavailable", []string{"refused", web.PrivateIP + ":80"}, args)
		if strings.Contains(r.stderr, "cannot reach the openvpc server") || strings.Contains(r.stderr, "openvpc server") {
			t.Errorf("a refusal inside the VPC blamed the server: %s", r.stderr)
		}
	})
	t.Run("ping with a reply", func(t *testing.T) {
		if out := s.ok(t, "ping", "app", "web", "-c", "1"); !strings.Contains(out, "1 received") {
			t.Errorf("ping app web: %s", out)
		}
	})
	t.Run("ping without a reply", func(t *testing.T) {
		r := s.run(t, "ping", "app", "10.0.1.200", "-c", "1", "--timeout", "300ms")
		if r.code != 1 || !strings.Contains(r.stdout, "0 received") || !strings.Contains(r.stderr, "no reply") {
			t.Errorf("ping to nobody: want exit 1 with the summary and 'no reply', got %s", r)
		}
	})
	t.Run("forged ping", func(t *testing.T) {
		r := s.run(t, "ping", "app", "web", "--source", "10.0.1.99", "-c", "1")
		if r.code != 1 || !strings.Contains(r.stdout, "spoofed-source") || !strings.Contains(r.stderr, "dropped") {
			t.Errorf("forged ping: want exit 1 saying spoofed-source, got %s", r)
		}
		if r := s.run(t, "-o", "json", "ping", "app", "web", "--source", "10.0.1.99", "-c", "1"); r.code != 1 || !strings.Contains(r.stdout, `"spoofed-source"`) {
			t.Errorf("forged ping -o json: want the JSON and exit 1, got %s", r)
		}
	})
	t.Run("a subnet moved to another route table", func(t *testing.T) {
		s.ok(t, "vpc", "create", "--name", "yellow", "--cidr", "10.1.0.0/16")
		s.ok(t, "subnet", "create", "--vpc", "yellow", "--cidr", "10.1.1.0/24", "--name", "yellow-a")
		s.ok(t, "instance", "run", "--subnet", "yellow-a", "--name", "db", "--host", "host-b", "--wait")
		s.ok(t, "peering", "create", "--vpc", "red", "--peer-vpc", "yellow", "--name", "red-yellow")
		s.ok(t, "peering", "accept", "red-yellow")
		s.ok(t, "route", "create", "--vpc", "red", "--dest", "10.1.0.0/16", "--target", "red-yellow")
		s.ok(t, "route", "create", "--vpc", "yellow", "--dest", "10.0.0.0/16", "--target", "red-yellow")
		// Yellow's default security group admits only its own members.
		s.ok(t, "sg", "authorize", "yellow/default", "--proto", "all", "--source-group", "red/default")
		if out := s.ok(t, "trace", "app", "db"); !strings.Contains(out, "verdict: delivered") {
			t.Fatalf("trace app db through the peering: %s", out)
		}
		isolated := okJSON[rtbJ](t, s, "route-table", "create", "--vpc", "red", "--name", "isolated")
		if sn := okJSON[subnetJ](t, s, "route-table", "associate", "isolated", "--subnet", "red-a"); sn.RouteTableID != isolated.ID {
			t.Fatalf("associate: subnet has route table %s, want %s", sn.RouteTableID, isolated.ID)
		}
		// The hosts' caches follow: app's packets now take the isolated
		// table, which has no route to yellow.
		var out string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r := s.run(t, "trace", "app", "db")
			if out = r.stdout; strings.Contains(out, "verdict: no-route") && r.code == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trace app db after moving red-a to a table without the route: %s", r)
			}
		}
		s.ok(t, "route-table", "associate", okJSON[vpcJ](t, s, "vpc", "get", "red").MainRouteTableID, "--subnet", "red-a")
		s.fail(t, "invalid_argument", []string{"its own VPC"}, "route-table", "associate", "isolated", "--subnet", "yellow-a")
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if r := s.run(t, "trace", "app", "db"); r.code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("trace app db after moving red-a back to the main table is still not delivered")
			}
		}
	})
	t.Run("trace delivered", func(t *testing.T) {
		if out := s.ok(t, "trace", "app", "web"); !strings.Contains(out, "verdict: delivered") {
			t.Errorf("trace app web: %s", out)
		}
	})
	t.Run("trace dropped", func(t *testing.T) {
		r := s.run(t, "trace", "app", "10.9.9.9")
		if r.code != 1 || !strings.Contains(r.stdout, "verdict: no-route") || !strings.Contains(r.stderr, "no-route") {
			t.Errorf("trace to a destination without a route: want exit 1 and no-route, got %s", r)
		}
		r = s.run(t, "trace", "app", "web", "--source", "10.0.1.99")
		if r.code != 1 || !strings.Contains(r.stdout, "spoofed-source") {
			t.Errorf("trace of a forged packet: want exit 1 and spoofed-source, got %s", r)
		}
	})
}

// TestJSONShape: -o json prints 64-bit numbers as JSON numbers and enums
// as the words the tables print (edge, running, active), the shape
// docs/operations.md promises scripts.
func TestJSONShape(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.registerEdge(t, "edge-1", "127.0.1.251")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	s.ok(t, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")

	hosts := append(okJSON[[]map[string]any](t, s, "host", "list"), okJSON[[]map[string]any](t, s, "edge", "list")...)
	roles := map[string]any{}
	for _, h := range hosts {
		roles[h["id"].(string)] = h["role"]
		for _, k := range []string{"instances", "ackedRevision", "lag"} {
			if _, ok := h[k].(float64); !ok {
				t.Errorf("host %v: %q is %T (%v), want a JSON number", h["id"], k, h[k], h[k])
			}
		}
	}
	if roles["host-a"] != "host" || roles["edge-1"] != "edge" {
		t.Errorf("host list roles = %v, want host-a: host and edge-1: edge", roles)
	}
	if inst := okJSON[map[string]any](t, s, "instance", "get", "web"); inst["state"] != "pending" {
		t.Errorf("instance state = %v, want pending", inst["state"])
	}
	if rtb := okJSON[[]rtbJ](t, s, "route-table", "list"); len(rtb) != 1 || rtb[0].Routes[0].State != "active" {
		t.Errorf("route-table list = %+v, want the local route active", rtb)
	}
	out := s.ok(t, "-o", "json", "host", "list")
	for _, proto := range []string{"HOST_ROLE_", `"instances": "`, `"lag": "`} {
		if strings.Contains(out, proto) {
			t.Errorf("host list -o json has the wire form %q:\n%s", proto, out)
		}
	}
}

// TestHostAndEdgeCommands: the daemons (host run, edge run) and the
// resources (host list|get|remove, edge list|get|remove) are apart and
// found from the help; hosts and edges are listed apart; the old
// `openvpc host --host-id …` still runs the agent, with a hint.
func TestHostAndEdgeCommands(t *testing.T) {
	for _, noun := range []string{"host", "edge"} {
		r := runCLI(t, nil, noun)
		for _, w := range []string{"run ", "list ", "get ", "remove "} {
			if r.code != 0 || !strings.Contains(r.stdout, "  "+w) {
				t.Errorf("openvpc %s: want help listing %q and exit 0, got %s", noun, w, r)
			}
		}
	}
	if r := runCLI(t, nil, "--help"); !strings.Contains(r.stdout, "host ") || !strings.Contains(r.stdout, "edge ") || !strings.Contains(r.stdout, "(host run)") {
		t.Errorf("openvpc --help does not show host and edge with their run commands:\n%s", r.stdout)
	}

	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.registerEdge(t, "edge-1", "127.0.1.251")
	if out := s.ok(t, "host", "list"); !strings.Contains(out, "host-a") || strings.Contains(out, "edge-1") {
		t.Errorf("host list should show host-a and no edge:\n%s", out)
	}
	if out := s.ok(t, "edge", "list"); !strings.Contains(out, "edge-1") || strings.Contains(out, "host-a") {
		t.Errorf("edge list should show edge-1 and no host:\n%s", out)
	}
	if h := okJSON[hostJ](t, s, "host", "get", "host-a"); h.ID != "host-a" || h.Role != "host" || h.UnderlayAddress != "127.0.1.1" {
		t.Errorf("host get host-a = %+v", h)
	}
	if e := okJSON[hostJ](t, s, "edge", "get", "edge-1"); e.ID != "edge-1" || e.Role != "edge" {
		t.Errorf("edge get edge-1 = %+v", e)
	}
	s.fail(t, "not_found", []string{"edge-1 is not a host but an edge", "openvpc edge"}, "host", "get", "edge-1")
	s.fail(t, "not_found", []string{"host-a is not an edge but a host"}, "edge", "remove", "host-a")
	s.fail(t, "not_found", []string{"host-z"}, "host", "get", "host-z")

	t.Run("the old daemon form", func(t *testing.T) {
		r := runCLI(t, nil, "host", "--server", s.url, "--host-id", "host-l", "--underlay", "127.0.1.7",
			"--cert-dir", t.TempDir(), "--join-token", s.joinToken(t, "edge"), "--nic", "none")
		// The token is an edge's: the agent ran, joined, and was refused.
		if r.code == 0 || !strings.Contains(r.stderr, "is now `openvpc host run") || !strings.Contains(r.stderr, "edge") {
			t.Errorf("openvpc host --host-id … should run the agent with a hint, got %s", r)
		}
	})
}

// TestVersion: openvpc version and --version say the version, the commit
// (as the Go toolchain recorded it in the binary) and the Go version.
func TestVersion(t *testing.T) {
	var v struct {
		Version, Commit, Go, Platform string
	}
	r := runCLI(t, nil, "version", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil {
		t.Fatalf("openvpc version -o json: %v, %s", err, r)
	}
	if v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH || v.Version == "" {
		t.Errorf("version -o json = %+v, want go %s on %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	// The commit is what `go version -m` reads from the binary.
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			want = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	if v.Commit != want {
		t.Errorf("version says commit %q, the binary records %q", v.Commit, want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(t, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "openvpc "+v.Version+", commit ") || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("openvpc %s: %s", args[0], r)
		}
	}
}

// TestCompletion: the shell completion of a resource argument or flag
// offers the names and ids the API has.
func TestCompletion(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	red := okJSON[vpcJ](t, s, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "rose", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web")
	complete := func(args ...string) []string {
		t.Helper()
		r := s.run(t, append([]string{"__complete"}, args...)...)
		if r.code != 0 || strings.Contains(r.stderr, "Error") {
			t.Fatalf("complete %q: %s", args, r)
		}
		var got []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		return got
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"vpc", "get", "r"}, []string{"red", "rose"}},
		{[]string{"vpc", "delete", "vpc-"}, nil}, // ids: checked below
		{[]string{"subnet", "create", "--vpc", "re"}, []string{"red"}},
		{[]string{"instance", "run", "--subnet", ""}, nil},
		{[]string{"ping", "w"}, []string{"web"}},
		{[]string{"instance", "run", "--host", "host-"}, []string{"host-a"}},
		{[]string{"host", "get", ""}, []string{"host-a"}},
	}
	for _, tc := range cases {
		got := complete(tc.args...)
		if tc.want != nil && !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := complete("vpc", "delete", "vpc-"); !slices.Contains(got, red.ID) {
		t.Errorf("complete vpc delete vpc- = %q, want %s among them", got, red.ID)
	}
	if got := complete("instance", "run", "--subnet", ""); !slices.Contains(got, "red-a") {
		t.Errorf("complete --subnet = %q, want red-a", got)
	}
	if got := complete("instance", "terminate", ""); !slices.Contains(got, "web") || !slices.Contains(got, web.ID) {
		t.Errorf("complete instance terminate = %q, want web and %s", got, web.ID)
	}
}

// TestEveryResourceAlike: every resource has get; routes are listed and
// deleted by --vpc as they are created; the commands that act from inside
// an instance live at the top, their old spellings still work; a
// terminated instance is found by the name list shows; a route inside the
// VPC's own CIDR is refused.
func TestEveryResourceAlike(t *testing.T) {
	s := startServer(t, t.TempDir(), "--eip-pool", "198.51.100.0/30")
	s.registerHost(t, "host-a", "127.0.1.1")
	red := okJSON[vpcJ](t, s, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	g := okJSON[igwJ](t, s, "igw", "create", "--name", "red-igw")
	s.ok(t, "igw", "attach", "red-igw", "--vpc", "red")
	e := okJSON[eipJ](t, s, "eip", "allocate", "--name", "web-ip")

	for _, ref := range []string{"red-igw", g.ID} {
		if got := okJSON[igwJ](t, s, "igw", "get", ref); got.ID != g.ID || got.VpcID != red.ID {
			t.Errorf("igw get %s = %+v, want %s attached to %s", ref, got, g.ID, red.ID)
		}
	}
	for _, ref := range []string{"web-ip", e.AllocationID, e.PublicIP} {
		if got := okJSON[eipJ](t, s, "eip", "get", ref); got != e {
			t.Errorf("eip get %s = %+v, want %+v", ref, got, e)
		}
	}
	s.fail(t, "not_found", []string{`"nope"`}, "igw", "get", "nope")
	s.fail(t, "not_found", []string{"198.51.100.2"}, "eip", "get", "198.51.100.2")

	s.ok(t, "route", "create", "--vpc", "red", "--dest", "0.0.0.0/0", "--target", "red-igw")
	routes := okJSON[[]struct {
		RouteTableID string `json:"routeTableId"`
		VpcID        string `json:"vpcId"`
		routeJ
	}](t, s, "route", "list", "--vpc", "red")
	if len(routes) != 2 || routes[1].RouteTableID != red.MainRouteTableID || routes[1].VpcID != red.ID ||
		routes[1].routeJ != (routeJ{Dest: "0.0.0.0/0", Target: g.ID, State: "active"}) || routes[0].Target != "local" {
		t.Errorf("route list --vpc red = %+v", routes)
	}
	if out := s.ok(t, "route", "list"); !strings.Contains(out, "0.0.0.0/0") || !strings.Contains(out, "DESTINATION") {
		t.Errorf("route list:\n%s", out)
	}
	if out := s.ok(t, "route", "list", "--route-table", red.MainRouteTableID); !strings.Contains(out, g.ID) {
		t.Errorf("route list --route-table:\n%s", out)
	}
	s.fail(t, "invalid_argument", []string{"10.0.5.0/24", "inside the VPC's local route 10.0.0.0/16"},
		"route", "create", "--vpc", "red", "--dest", "10.0.5.0/24", "--target", "red-igw")
	if rt := okJSON[rtbJ](t, s, "route", "delete", "--vpc", "red", "--dest", "0.0.0.0/0"); len(rt.Routes) != 1 {
		t.Errorf("route delete --vpc left %+v", rt.Routes)
	}
	s.fail(t, "", []string{"--route-table", "--vpc"}, "route", "delete", "--dest", "0.0.0.0/0")

	web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web")
	s.ok(t, "instance", "terminate", "web")
	if got := okJSON[instJ](t, s, "instance", "get", "web"); got.ID != web.ID || got.State != "terminated" {
		t.Errorf("instance get web after terminate = %+v, want %s terminated", got, web.ID)
	}

	// ping and the others are top-level; instance ping etc. still parse
	// (and fail here only because web is terminated).
	for _, args := range [][]string{{"ping", "web", "web"}, {"instance", "ping", "web", "web"}, {"connect", "web", "web:80"}, {"instance", "connect", "web", "web:80"}} {
		s.fail(t, "failed_precondition", []string{"terminated"}, args...)
	}
	// "a Elastic IP" was the article of every kind (item 21).
	s.fail(t, "already_exists", []string{"an Elastic IP named \"web-ip\" already exists"}, "eip", "allocate", "--name", "web-ip")
	s.fail(t, "invalid_argument", []string{"looks like an Elastic IP id"}, "eip", "allocate", "--name", "eipalloc-0123456789abcdef")
	s.fail(t, "already_exists", []string{"an internet gateway named"}, "igw", "create", "--name", "red-igw")
	s.fail(t, "already_exists", []string{"a VPC named"}, "vpc", "create", "--name", "red", "--cidr", "10.7.0.0/16")
	s.fail(t, "invalid_argument", []string{"peering (pcx-…) or an internet gateway (igw-…)"}, "route", "create", "--vpc", "red", "--dest", "10.9.0.0/16", "--target", "local")
	if r := runCLI(t, nil, "--help"); strings.Contains(r.stdout, "instance connect") {
		t.Errorf("help still sends people to instance connect")
	}
}
