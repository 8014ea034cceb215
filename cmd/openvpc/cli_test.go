package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/pki"
)

const (
	stateActive    = "active"
	stateBlackhole = "blackhole"
)

// TestServerStopsCleanly: SIGTERM ends `openvpc server` with exit code 0
// within a few seconds, and the embedded etcd lets go of the data dir.
func TestServerStopsCleanly(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.stop(t)
}

// TestWorkflow drives one cloud through the CLI the way a user would:
// VPCs, subnets, instances, peering, routes, and deletes in the right order.
func TestWorkflow(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.registerHost(t, "host-b", "127.0.1.2")
	s.fakeAgent(t, "host-a")
	s.fakeAgent(t, "host-b")

	var red, yellow vpcJ
	var redA, yellowA subnetJ
	var pcx peeringJ
	insts := map[string]instJ{} // by name

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"hosts", func(t *testing.T) {
			hosts := okJSON[[]hostJ](t, s, "host", "list")
			want := []hostJ{
				{ID: "host-a", UnderlayAddress: "127.0.1.1", Role: "host"},
				{ID: "host-b", UnderlayAddress: "127.0.1.2", Role: "host"},
			}
			if !reflect.DeepEqual(hosts, want) {
				t.Errorf("host list = %+v, want %+v", hosts, want)
			}
		}},
		{"create VPCs", func(t *testing.T) {
			out := s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
			for _, w := range []string{"ID", "NAME", "CIDR", "VNI", "red", "10.0.0.0/16", "vpc-"} {
				if !strings.Contains(out, w) {
					t.Errorf("vpc create table output lacks %q:\n%s", w, out)
				}
			}
			red = okJSON[vpcJ](t, s, "vpc", "get", "red")
			yellow = okJSON[vpcJ](t, s, "vpc", "create", "--name", "yellow", "--cidr", "10.1.0.0/16")
			for _, v := range []vpcJ{red, yellow} {
				if !strings.HasPrefix(v.ID, "vpc-") || len(v.ID) != len("vpc-0123456789abcdef") {
					t.Errorf("VPC id %q is not like vpc-0123456789abcdef", v.ID)
				}
				if v.VNI == 0 || v.VNI >= 1<<24 {
					t.Errorf("VPC %s has VNI %d, want a 24-bit non-zero VNI", v.Name, v.VNI)
				}
				if !strings.HasPrefix(v.MainRouteTableID, "rtb-") {
					t.Errorf("VPC %s main route table %q", v.Name, v.MainRouteTableID)
				}
			}
			if red.VNI == yellow.VNI {
				t.Errorf("red and yellow share VNI %d", red.VNI)
			}
			if red.CIDR != "10.0.0.0/16" || yellow.CIDR != "10.1.0.0/16" || yellow.Name != "yellow" {
				t.Errorf("got %+v and %+v", red, yellow)
			}
		}},
		{"get and list VPCs by name and id", func(t *testing.T) {
			for _, ref := range []string{"yellow", yellow.ID} {
				if got := okJSON[vpcJ](t, s, "vpc", "get", ref); got != yellow {
					t.Errorf("vpc get %s = %+v, want %+v", ref, got, yellow)
				}
			}
			if got := okJSON[[]vpcJ](t, s, "vpc", "list"); !reflect.DeepEqual(got, []vpcJ{red, yellow}) {
				t.Errorf("vpc list = %+v, want red and yellow", got)
			}
			out := s.ok(t, "vpc", "list")
			if !strings.Contains(out, red.ID) || !strings.Contains(out, yellow.ID) {
				t.Errorf("vpc list table lacks the VPCs:\n%s", out)
			}
		}},
		{"create subnets", func(t *testing.T) {
			redA = okJSON[subnetJ](t, s, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
			yellowA = okJSON[subnetJ](t, s, "subnet", "create", "--vpc", yellow.ID, "--cidr", "10.1.1.0/24", "--name", "yellow-a")
			want := subnetJ{ID: redA.ID, Name: "red-a", VpcID: red.ID, CIDR: "10.0.1.0/24", RouteTableID: red.MainRouteTableID, Gateway: "10.0.1.1"}
			if redA != want {
				t.Errorf("subnet create = %+v, want %+v", redA, want)
			}
			if !strings.HasPrefix(redA.ID, "subnet-") {
				t.Errorf("subnet id %q", redA.ID)
			}
			if yellowA.VpcID != yellow.ID || yellowA.RouteTableID != yellow.MainRouteTableID {
				t.Errorf("yellow-a = %+v", yellowA)
			}
		}},
		{"get and list subnets by name and id", func(t *testing.T) {
			for _, ref := range []string{"red-a", redA.ID} {
				if got := okJSON[subnetJ](t, s, "subnet", "get", ref); got != redA {
					t.Errorf("subnet get %s = %+v, want %+v", ref, got, redA)
				}
			}
			if got := okJSON[[]subnetJ](t, s, "subnet", "list"); len(got) != 2 {
				t.Errorf("subnet list: %d subnets, want 2: %+v", len(got), got)
			}
			for _, ref := range []string{"red", red.ID} {
				if got := okJSON[[]subnetJ](t, s, "subnet", "list", "--vpc", ref); !reflect.DeepEqual(got, []subnetJ{redA}) {
					t.Errorf("subnet list --vpc %s = %+v, want only red-a", ref, got)
				}
			}
		}},
		{"run instances", func(t *testing.T) {
			web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")
			if web.PrivateIP != "10.0.1.4" {
				t.Errorf("first instance got %s, want 10.0.1.4 (the first four addresses are reserved)", web.PrivateIP)
			}
			if web.HostID != "host-a" || web.SubnetID != redA.ID || web.VpcID != red.ID || web.Name != "web" {
				t.Errorf("instance = %+v", web)
			}
			if !strings.HasPrefix(web.ID, "i-") || !strings.HasPrefix(web.EniID, "eni-") || !strings.HasPrefix(web.MAC, "02:") {
				t.Errorf("instance ids/mac: %+v", web)
			}
			if web.State != "pending" && web.State != "running" {
				t.Errorf("new instance state %s", web.State)
			}
			insts["web"] = web

			// No --host: least-loaded placement. host-a has one instance,
			// so the next goes to host-b, then they alternate.
			wantIP := []string{"10.0.1.5", "10.0.1.6", "10.0.1.7"}
			perHost := map[string]int{"host-a": 1}
			for i, name := range []string{"db", "cache", "queue"} {
				inst := okJSON[instJ](t, s, "instance", "run", "--subnet", redA.ID, "--name", name)
				if inst.PrivateIP != wantIP[i] {
					t.Errorf("instance %s got %s, want the lowest free address %s", name, inst.PrivateIP, wantIP[i])
				}
				perHost[inst.HostID]++
				insts[name] = inst
			}
			if insts["db"].HostID != "host-b" {
				t.Errorf("db placed on %s, want the least-loaded host-b", insts["db"].HostID)
			}
			if perHost["host-a"] != 2 || perHost["host-b"] != 2 {
				t.Errorf("placement did not spread: %v", perHost)
			}

			fixed := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "fixed", "--ip", "10.0.1.100", "--host", "host-b")
			if fixed.PrivateIP != "10.0.1.100" || fixed.HostID != "host-b" {
				t.Errorf("--ip 10.0.1.100 --host host-b gave %+v", fixed)
			}
			insts["fixed"] = fixed

			hosts := okJSON[[]hostJ](t, s, "host", "list")
			got := map[string]int64{}
			for _, h := range hosts {
				got[h.ID] = h.Instances
			}
			if want := map[string]int64{"host-a": 2, "host-b": 3}; !reflect.DeepEqual(got, want) {
				t.Errorf("host list instance counts = %v, want %v", got, want)
			}
		}},
		{"run --wait returns a running instance", func(t *testing.T) {
			y1 := okJSON[instJ](t, s, "instance", "run", "--subnet", "yellow-a", "--name", "y1", "--wait", "--timeout", "15s")
			if y1.State != "running" {
				t.Errorf("instance run --wait: state %s, want running", y1.State)
			}
			if y1.PrivateIP != "10.1.1.4" || y1.VpcID != yellow.ID {
				t.Errorf("y1 = %+v", y1)
			}
			insts["y1"] = y1
		}},
		{"get and list instances", func(t *testing.T) {
			web := insts["web"]
			for _, ref := range []string{"web", web.ID} {
				got := okJSON[instJ](t, s, "instance", "get", ref)
				got.State, web.State = "", ""
				if got != web {
					t.Errorf("instance get %s = %+v, want %+v", ref, got, web)
				}
			}
			list := okJSON[[]instJ](t, s, "instance", "list", "--subnet", "red-a")
			var ips []string
			for _, i := range list {
				ips = append(ips, i.PrivateIP)
			}
			if want := []string{"10.0.1.4", "10.0.1.5", "10.0.1.6", "10.0.1.7", "10.0.1.100"}; !slices.Equal(ips, want) {
				t.Errorf("instance list --subnet red-a addresses = %v, want %v", ips, want)
			}
			if got := okJSON[[]instJ](t, s, "instance", "list", "--vpc", "yellow"); len(got) != 1 || got[0].ID != insts["y1"].ID {
				t.Errorf("instance list --vpc yellow = %+v, want only y1", got)
			}
			if got := okJSON[[]instJ](t, s, "instance", "list", "--host", "host-b", "--vpc", red.ID); len(got) != 3 {
				t.Errorf("instance list --host host-b --vpc red: %d instances, want 3", len(got))
			}
		}},
		{"terminated address is reused", func(t *testing.T) {
			term := okJSON[instJ](t, s, "instance", "terminate", "cache")
			if term.State != "terminated" || term.PrivateIP != "10.0.1.6" {
				t.Errorf("terminate cache = %+v", term)
			}
			s.fail(t, "failed_precondition", []string{term.ID, "already terminated"}, "instance", "terminate", term.ID)
			again := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "cache")
			if again.PrivateIP != "10.0.1.6" {
				t.Errorf("after terminating 10.0.1.6 the next instance got %s, want 10.0.1.6", again.PrivateIP)
			}
			insts["cache"] = again
		}},
		{"peering create and accept", func(t *testing.T) {
			pcx = okJSON[peeringJ](t, s, "peering", "create", "--vpc", "red", "--peer-vpc", yellow.ID, "--name", "red-yellow")
			want := peeringJ{ID: pcx.ID, Name: "red-yellow", RequesterVpcID: red.ID, AccepterVpcID: yellow.ID, State: "pending-acceptance"}
			if pcx != want || !strings.HasPrefix(pcx.ID, "pcx-") {
				t.Errorf("peering create = %+v, want %+v", pcx, want)
			}
			s.fail(t, "failed_precondition", []string{pcx.ID, "not active", "accept"},
				"route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", "red-yellow")
			acc := okJSON[peeringJ](t, s, "peering", "accept", "red-yellow")
			if acc.State != "active" || acc.ID != pcx.ID {
				t.Errorf("peering accept = %+v", acc)
			}
			pcx = acc
			for _, ref := range []string{"red-yellow", pcx.ID} {
				if got := okJSON[peeringJ](t, s, "peering", "get", ref); got != pcx {
					t.Errorf("peering get %s = %+v, want %+v", ref, got, pcx)
				}
			}
			for _, filter := range [][]string{nil, {"--vpc", "yellow"}, {"--vpc", red.ID}} {
				got := okJSON[[]peeringJ](t, s, append([]string{"peering", "list"}, filter...)...)
				if !reflect.DeepEqual(got, []peeringJ{pcx}) {
					t.Errorf("peering list %v = %+v, want [%+v]", filter, got, pcx)
				}
			}
		}},
		{"routes to the peering", func(t *testing.T) {
			// By the peering's id, into red's main table by id.
			rt := okJSON[rtbJ](t, s, "route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", pcx.ID)
			want := []routeJ{{"10.0.0.0/16", "local", stateActive}, {"10.1.0.0/16", pcx.ID, stateActive}}
			if !reflect.DeepEqual(rt.Routes, want) {
				t.Errorf("route create: routes = %+v, want %+v", rt.Routes, want)
			}
			// By the peering's name, into a named extra route table of yellow.
			extra := okJSON[rtbJ](t, s, "route-table", "create", "--vpc", "yellow", "--name", "yellow-extra")
			if extra.Main || extra.VpcID != yellow.ID || !reflect.DeepEqual(extra.Routes, []routeJ{{"10.1.0.0/16", "local", stateActive}}) {
				t.Errorf("route-table create = %+v", extra)
			}
			rt = okJSON[rtbJ](t, s, "route", "create", "--route-table", "yellow-extra", "--dest", "10.0.1.0/24", "--target", "red-yellow")
			if want := []routeJ{{"10.1.0.0/16", "local", stateActive}, {"10.0.1.0/24", pcx.ID, stateActive}}; !reflect.DeepEqual(rt.Routes, want) {
				t.Errorf("route create by peering name: routes = %+v, want %+v (target stored as the id)", rt.Routes, want)
			}
			s.fail(t, "already_exists", []string{"10.0.1.0/24"},
				"route", "create", "--route-table", "yellow-extra", "--dest", "10.0.1.0/24", "--target", "red-yellow")

			tables := okJSON[[]rtbJ](t, s, "route-table", "list", "--vpc", "red")
			if len(tables) != 1 || tables[0].ID != red.MainRouteTableID || !tables[0].Main {
				t.Fatalf("route-table list --vpc red = %+v, want red's main table", tables)
			}
			if want := []routeJ{{"10.0.0.0/16", "local", stateActive}, {"10.1.0.0/16", pcx.ID, stateActive}}; !reflect.DeepEqual(tables[0].Routes, want) {
				t.Errorf("route-table list: routes = %+v, want %+v", tables[0].Routes, want)
			}
			if all := okJSON[[]rtbJ](t, s, "route-table", "list"); len(all) != 3 {
				t.Errorf("route-table list: %d tables, want 3 (two main, one extra)", len(all))
			}
			out := s.ok(t, "route-table", "list", "--vpc", "red")
			if !strings.Contains(out, "10.1.0.0/16→"+pcx.ID) || strings.Contains(out, "blackhole") {
				t.Errorf("route-table list table should show the active route to %s:\n%s", pcx.ID, out)
			}
		}},
		{"peering delete leaves blackholes", func(t *testing.T) {
			out := s.ok(t, "peering", "delete", "red-yellow")
			if !strings.Contains(out, "deleted peering red-yellow") {
				t.Errorf("peering delete printed %q", out)
			}
			s.fail(t, "not_found", []string{"red-yellow"}, "peering", "get", "red-yellow")
			tables := okJSON[[]rtbJ](t, s, "route-table", "list", "--vpc", red.ID)
			if len(tables) != 1 {
				t.Fatalf("route-table list --vpc red = %+v", tables)
			}
			if want := []routeJ{{"10.0.0.0/16", "local", stateActive}, {"10.1.0.0/16", pcx.ID, stateBlackhole}}; !reflect.DeepEqual(tables[0].Routes, want) {
				t.Errorf("after peering delete: routes = %+v, want %+v", tables[0].Routes, want)
			}
			got := okJSON[rtbJ](t, s, "route-table", "get", "yellow-extra")
			if len(got.Routes) != 2 || got.Routes[1].State != stateBlackhole {
				t.Errorf("yellow-extra after peering delete = %+v, want its peering route blackholed", got.Routes)
			}
			table := s.ok(t, "route-table", "list", "--vpc", "red")
			if !strings.Contains(table, "10.1.0.0/16→"+pcx.ID+"(blackhole)") {
				t.Errorf("route-table list table should mark the route as blackhole:\n%s", table)
			}
			rt := okJSON[rtbJ](t, s, "route", "delete", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16")
			if want := []routeJ{{"10.0.0.0/16", "local", stateActive}}; !reflect.DeepEqual(rt.Routes, want) {
				t.Errorf("route delete: routes = %+v, want %+v", rt.Routes, want)
			}
			s.fail(t, "not_found", []string{"10.1.0.0/16"}, "route", "delete", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16")
			s.fail(t, "invalid_argument", []string{"local"}, "route", "delete", "--route-table", red.MainRouteTableID, "--dest", "10.0.0.0/16")
		}},
		{"deletes in order", func(t *testing.T) {
			s.fail(t, "failed_precondition", []string{red.ID, redA.ID}, "vpc", "delete", "red")
			s.fail(t, "failed_precondition", []string{redA.ID, insts["web"].ID}, "subnet", "delete", "red-a")
			s.fail(t, "failed_precondition", []string{"main"}, "route-table", "delete", red.MainRouteTableID)
			// yellow still has a subnet and an extra route table.
			s.fail(t, "failed_precondition", []string{yellow.ID, yellowA.ID}, "vpc", "delete", "yellow")

			for _, name := range []string{"web", "db", "cache", "queue"} {
				if got := okJSON[instJ](t, s, "instance", "terminate", name); got.State != "terminated" {
					t.Errorf("terminate %s: state %s", name, got.State)
				}
			}
			term := s.ok(t, "instance", "terminate", insts["fixed"].ID, "--wait", "--timeout", "15s")
			if !strings.Contains(term, "terminated") {
				t.Errorf("instance terminate --wait printed:\n%s", term)
			}
			if got := s.ok(t, "-o", "json", "subnet", "delete", "red-a"); strings.TrimSpace(got) != "{}" {
				t.Errorf("subnet delete -o json printed %q, want {}", got)
			}
			if got := s.ok(t, "vpc", "delete", "red"); !strings.Contains(got, "deleted VPC red") {
				t.Errorf("vpc delete printed %q", got)
			}
			s.fail(t, "not_found", []string{"red"}, "vpc", "get", "red")
			s.fail(t, "not_found", []string{red.ID}, "vpc", "get", red.ID)
			s.fail(t, "not_found", nil, "route-table", "get", red.MainRouteTableID)
			if got := okJSON[[]vpcJ](t, s, "vpc", "list"); !reflect.DeepEqual(got, []vpcJ{yellow}) {
				t.Errorf("vpc list after deleting red = %+v, want only yellow", got)
			}
			// Terminated instances stay visible for a while, as terminated.
			if got := okJSON[instJ](t, s, "instance", "get", insts["web"].ID); got.State != "terminated" {
				t.Errorf("terminated web: state %s", got.State)
			}
			// Names of terminated instances are free again, but while list
			// shows one, get finds it by that name (issue 20 item 19).
			if got := okJSON[instJ](t, s, "instance", "get", "web"); got.ID != insts["web"].ID || got.State != "terminated" {
				t.Errorf("instance get web (terminated) = %+v", got)
			}
		}},
		{"delete yellow completely", func(t *testing.T) {
			s.ok(t, "instance", "terminate", "y1")
			s.ok(t, "subnet", "delete", yellowA.ID)
			s.fail(t, "failed_precondition", []string{yellow.ID}, "vpc", "delete", "yellow")
			s.ok(t, "route-table", "delete", "yellow-extra")
			s.ok(t, "vpc", "delete", yellow.ID)
			if got := okJSON[[]vpcJ](t, s, "vpc", "list"); len(got) != 0 {
				t.Errorf("vpc list = %+v, want []", got)
			}
			if got := strings.TrimSpace(s.ok(t, "-o", "json", "subnet", "list")); got != "[]" {
				t.Errorf("subnet list -o json on nothing = %q, want []", got)
			}
		}},
		{"events", func(t *testing.T) {
			if got := strings.TrimSpace(s.ok(t, "-o", "json", "events")); got != "[]" {
				t.Errorf("events -o json = %q, want []", got)
			}
			if out := s.ok(t, "events"); !strings.Contains(out, "REASON") {
				t.Errorf("events table lacks its header:\n%s", out)
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.fn) {
			t.Fatalf("step %q failed; later steps depend on it", st.name)
		}
	}
}

// TestJSONOutput: -o json prints an object for one resource and an array
// for a list, with at least id and name.
func TestJSONOutput(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "yellow", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")

	objects := [][]string{
		{"vpc", "get", "red"},
		{"subnet", "get", "red-a"},
		{"vpc", "create", "--name", "green", "--cidr", "10.2.0.0/16"},
	}
	for _, args := range objects {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			obj := okJSON[map[string]any](t, s, args...)
			for _, k := range []string{"id", "name"} {
				if v, ok := obj[k].(string); !ok || v == "" {
					t.Errorf("%q missing or empty in %v", k, obj)
				}
			}
		})
	}
	lists := []struct {
		args []string
		n    int
	}{
		{[]string{"vpc", "list"}, 3},
		{[]string{"subnet", "list", "--vpc", "red"}, 1},
		{[]string{"subnet", "list", "--vpc", "yellow"}, 0},
		{[]string{"route-table", "list"}, 3},
		{[]string{"peering", "list"}, 0},
		{[]string{"instance", "list"}, 0},
		{[]string{"host", "list"}, 0},
	}
	for _, tc := range lists {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			arr := okJSON[[]map[string]any](t, s, tc.args...)
			if arr == nil {
				t.Fatalf("not a JSON array (null)")
			}
			if len(arr) != tc.n {
				t.Errorf("%d elements, want %d: %v", len(arr), tc.n, arr)
			}
			for _, obj := range arr {
				if v, ok := obj["id"].(string); !ok || v == "" {
					t.Errorf("element without id: %v", obj)
				}
				if _, ok := obj["name"]; !ok && tc.args[0] != "host" {
					t.Errorf("element without name: %v", obj)
				}
			}
		})
	}
	t.Run("unknown format", func(t *testing.T) {
		s.fail(t, "", []string{"yaml"}, "-o", "yaml", "vpc", "list")
	})
}

// TestErrors: bad input fails with a non-zero exit code, the message and
// the API code on stderr, nothing on stdout, and nothing half-written.
func TestErrors(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	red := okJSON[vpcJ](t, s, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "yellow", "--cidr", "10.1.0.0/16")
	s.ok(t, "vpc", "create", "--name", "blue", "--cidr", "10.0.8.0/24") // overlaps red
	redA := okJSON[subnetJ](t, s, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	first := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a")
	pending := okJSON[peeringJ](t, s, "peering", "create", "--vpc", "red", "--peer-vpc", "yellow", "--name", "red-yellow")
	before := okJSON[[]map[string]any](t, s, "vpc", "list")

	cases := []struct {
		name  string
		args  []string
		code  string // API code; empty for errors caught by the client
		wants []string
	}{
		{"CIDR with host bits", []string{"vpc", "create", "--name", "x", "--cidr", "10.0.0.1/16"},
			"invalid_argument", []string{"10.0.0.1/16", "did you mean 10.0.0.0/16"}},
		{"CIDR /8", []string{"vpc", "create", "--name", "x", "--cidr", "10.0.0.0/8"},
			"invalid_argument", []string{"/8", "/16", "/28"}},
		{"CIDR /29", []string{"vpc", "create", "--name", "x", "--cidr", "10.9.0.0/29"},
			"invalid_argument", []string{"/29"}},
		{"not a CIDR", []string{"vpc", "create", "--name", "x", "--cidr", "ten-dot-oh"},
			"invalid_argument", []string{"ten-dot-oh", "not a CIDR"}},
		{"IPv6 CIDR", []string{"vpc", "create", "--name", "x", "--cidr", "fd00::/48"},
			"invalid_argument", []string{"IPv4"}},
		{"duplicate VPC name", []string{"vpc", "create", "--name", "red", "--cidr", "10.5.0.0/16"},
			"already_exists", []string{`"red"`, red.ID}},
		{"VPC name that looks like an id", []string{"vpc", "create", "--name", "vpc-0123456789abcdef", "--cidr", "10.5.0.0/16"},
			"invalid_argument", []string{"vpc-0123456789abcdef", "looks like a VPC id"}},
		{"subnet name that looks like an id", []string{"subnet", "create", "--vpc", "red", "--cidr", "10.0.9.0/24", "--name", "subnet-0123456789abcdef"},
			"invalid_argument", []string{"subnet-0123456789abcdef", "looks like a subnet id"}},
		{"bad characters in a name", []string{"vpc", "create", "--name", "red vpc", "--cidr", "10.5.0.0/16"},
			"invalid_argument", []string{`"red vpc"`}},
		{"unknown VPC name", []string{"vpc", "get", "purple"},
			"not_found", []string{`"purple"`}},
		{"unknown VPC id", []string{"vpc", "get", "vpc-0000000000000000"},
			"not_found", []string{"vpc-0000000000000000"}},
		{"subnet in an unknown VPC", []string{"subnet", "create", "--vpc", "purple", "--cidr", "10.0.2.0/24"},
			"not_found", []string{`"purple"`}},
		// The API answers already_exists today; invalid_argument would do too.
		{"overlapping subnet", []string{"subnet", "create", "--vpc", "red", "--cidr", "10.0.1.128/25", "--name", "red-b"},
			"already_exists|invalid_argument|failed_precondition", []string{"10.0.1.128/25", "overlaps", redA.ID, "10.0.1.0/24"}},
		{"subnet outside its VPC", []string{"subnet", "create", "--vpc", "red", "--cidr", "10.1.2.0/24"},
			"invalid_argument", []string{"10.1.2.0/24", red.ID, "10.0.0.0/16"}},
		{"subnet CIDR with host bits", []string{"subnet", "create", "--vpc", "red", "--cidr", "10.0.2.1/24"},
			"invalid_argument", []string{"did you mean 10.0.2.0/24"}},
		{"route to a pending peering", []string{"route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", "red-yellow"},
			"failed_precondition", []string{pending.ID, "not active"}},
		{"route to no peering", []string{"route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", "nope"},
			"invalid_argument", []string{`"nope"`}},
		{"route with a bad destination", []string{"route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.1/16", "--target", "red-yellow"},
			"invalid_argument", []string{"did you mean 10.1.0.0/16"}},
		{"peering of overlapping CIDRs", []string{"peering", "create", "--vpc", "red", "--peer-vpc", "blue"},
			"invalid_argument", []string{"overlapping", "10.0.0.0/16", "10.0.8.0/24"}},
		{"peering with itself", []string{"peering", "create", "--vpc", "red", "--peer-vpc", red.ID},
			"invalid_argument", []string{"itself"}},
		{"second peering of a pair", []string{"peering", "create", "--vpc", "yellow", "--peer-vpc", "red"},
			"already_exists", []string{pending.ID}},
		{"--ip outside the subnet", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", "10.0.2.10"},
			"invalid_argument", []string{"10.0.2.10", "outside", "10.0.1.0/24"}},
		{"--ip network address", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", "10.0.1.0"},
			"invalid_argument", []string{"10.0.1.0", "reserved"}},
		{"--ip in the reserved range", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", "10.0.1.3"},
			"invalid_argument", []string{"10.0.1.3", "reserved", "10.0.1.4 to 10.0.1.254"}},
		{"--ip last address", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", "10.0.1.255"},
			"invalid_argument", []string{"10.0.1.255", "reserved"}},
		{"--ip not an address", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", "10.0.1"},
			"invalid_argument", []string{`"10.0.1"`}},
		{"--ip in use", []string{"instance", "run", "--subnet", "red-a", "--host", "host-a", "--ip", first.PrivateIP},
			"already_exists", []string{first.PrivateIP, first.ID}},
		{"unknown host", []string{"instance", "run", "--subnet", "red-a", "--host", "host-z"},
			"not_found", []string{"host-z"}},
		{"unknown subnet", []string{"instance", "run", "--subnet", "nowhere"},
			"not_found", []string{`"nowhere"`}},
		{"missing required flag", []string{"vpc", "create", "--name", "x"},
			"", []string{"cidr"}},
		{"VPC with subnets", []string{"vpc", "delete", "red"},
			"failed_precondition", []string{red.ID, redA.ID}},
		{"accept an unknown peering", []string{"peering", "accept", "pcx-0000000000000000"},
			"not_found", []string{"pcx-0000000000000000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.fail(t, tc.code, tc.wants, tc.args...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1", r.code)
			}
		})
	}

	t.Run("nothing half-written", func(t *testing.T) {
		if after := okJSON[[]map[string]any](t, s, "vpc", "list"); !reflect.DeepEqual(after, before) {
			t.Errorf("VPCs changed by failed commands:\nbefore %v\nafter  %v", before, after)
		}
		if sn := okJSON[[]subnetJ](t, s, "subnet", "list"); !reflect.DeepEqual(sn, []subnetJ{redA}) {
			t.Errorf("subnets after failed commands = %+v, want only red-a", sn)
		}
		if insts := okJSON[[]instJ](t, s, "instance", "list"); len(insts) != 1 {
			t.Errorf("instances after failed commands = %+v, want only the first", insts)
		}
		// The failed explicit-address runs left the pool alone: the next
		// address is .5.
		if next := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a"); next.PrivateIP != "10.0.1.5" {
			t.Errorf("next instance after failed runs got %s, want 10.0.1.5", next.PrivateIP)
		}
	})

	// No host agent acknowledges anything here, so --wait runs out of time
	// and says which host is late.
	t.Run("run --wait times out", func(t *testing.T) {
		s.fail(t, "deadline_exceeded", []string{"not running yet", "host-a"},
			"instance", "run", "--subnet", "red-a", "--host", "host-a", "--wait", "--timeout", "300ms")
	})
}

// TestRestart: state survives a server restart on the same data dir: same
// ids, VNIs, addresses, routes and hosts.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := startServer(t, dir)
	s1.registerHost(t, "host-a", "127.0.1.1")
	s1.registerHost(t, "host-b", "127.0.1.2")
	s1.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s1.ok(t, "vpc", "create", "--name", "yellow", "--cidr", "10.1.0.0/16")
	s1.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	s1.ok(t, "subnet", "create", "--vpc", "yellow", "--cidr", "10.1.1.0/24", "--name", "yellow-a")
	s1.ok(t, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")
	s1.ok(t, "instance", "run", "--subnet", "red-a", "--name", "db")
	s1.ok(t, "instance", "run", "--subnet", "yellow-a", "--name", "y1", "--ip", "10.1.1.77")
	s1.ok(t, "peering", "create", "--vpc", "red", "--peer-vpc", "yellow", "--name", "red-yellow")
	s1.ok(t, "peering", "accept", "red-yellow")
	red := okJSON[vpcJ](t, s1, "vpc", "get", "red")
	s1.ok(t, "route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", "red-yellow")
	s1.ok(t, "route-table", "create", "--vpc", "yellow", "--name", "yellow-extra")

	type snapshot struct {
		VPCs     []vpcJ
		Subnets  []subnetJ
		Insts    []instJ
		Peerings []peeringJ
		Tables   []rtbJ
		Hosts    []hostJ
	}
	take := func(s *apiServer) snapshot {
		return snapshot{
			VPCs:     okJSON[[]vpcJ](t, s, "vpc", "list"),
			Subnets:  okJSON[[]subnetJ](t, s, "subnet", "list"),
			Insts:    okJSON[[]instJ](t, s, "instance", "list"),
			Peerings: okJSON[[]peeringJ](t, s, "peering", "list"),
			Tables:   okJSON[[]rtbJ](t, s, "route-table", "list"),
			Hosts:    okJSON[[]hostJ](t, s, "host", "list"),
		}
	}
	was := take(s1)
	if len(was.VPCs) != 2 || len(was.Subnets) != 2 || len(was.Insts) != 3 || len(was.Peerings) != 1 || len(was.Tables) != 3 || len(was.Hosts) != 2 {
		t.Fatalf("unexpected state before restart: %+v", was)
	}
	s1.stop(t)

	s2 := startServer(t, dir)
	now := take(s2)
	if !reflect.DeepEqual(now.VPCs, was.VPCs) {
		t.Errorf("VPCs after restart:\n%+v\nwant\n%+v", now.VPCs, was.VPCs)
	}
	if !reflect.DeepEqual(now.Subnets, was.Subnets) {
		t.Errorf("subnets after restart:\n%+v\nwant\n%+v", now.Subnets, was.Subnets)
	}
	if !reflect.DeepEqual(now.Insts, was.Insts) {
		t.Errorf("instances after restart:\n%+v\nwant\n%+v", now.Insts, was.Insts)
	}
	if !reflect.DeepEqual(now.Peerings, was.Peerings) {
		t.Errorf("peerings after restart:\n%+v\nwant\n%+v", now.Peerings, was.Peerings)
	}
	if !reflect.DeepEqual(now.Tables, was.Tables) {
		t.Errorf("route tables after restart:\n%+v\nwant\n%+v", now.Tables, was.Tables)
	}
	if !reflect.DeepEqual(now.Hosts, was.Hosts) {
		t.Errorf("hosts after restart:\n%+v\nwant\n%+v", now.Hosts, was.Hosts)
	}

	// The restarted server keeps allocating where the old one stopped.
	next := okJSON[instJ](t, s2, "instance", "run", "--subnet", "red-a", "--host", "host-b")
	if next.PrivateIP != "10.0.1.6" {
		t.Errorf("first instance after restart got %s, want 10.0.1.6 (.4 and .5 are taken)", next.PrivateIP)
	}
	s2.fail(t, "already_exists", []string{"red"}, "vpc", "create", "--name", "red", "--cidr", "10.9.0.0/16")
	s2.fail(t, "already_exists", []string{"10.1.1.77"}, "instance", "run", "--subnet", "yellow-a", "--ip", "10.1.1.77", "--host", "host-a")
	green := okJSON[vpcJ](t, s2, "vpc", "create", "--name", "green", "--cidr", "10.2.0.0/16")
	for _, v := range was.VPCs {
		if v.VNI == green.VNI {
			t.Errorf("new VPC green reuses VNI %d of %s", green.VNI, v.Name)
		}
	}
}

// TestServerAddress: the server comes from --server or OPENVPC_SERVER, and
// an unreachable one gives an error naming its address.
func TestServerAddress(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	dead := freeAddr(t)

	listsRed := func(t *testing.T, r result) {
		t.Helper()
		if r.code != 0 || !strings.Contains(r.stdout, "red") {
			t.Errorf("want red listed, got %s", r)
		}
	}
	t.Run("env host:port", func(t *testing.T) {
		listsRed(t, runCLI(t, append(s.env(), "OPENVPC_SERVER="+s.addr), "vpc", "list"))
	})
	t.Run("env URL", func(t *testing.T) {
		listsRed(t, runCLI(t, append(s.env(), "OPENVPC_SERVER="+s.url+"/"), "vpc", "list"))
	})
	t.Run("flag wins over env", func(t *testing.T) {
		listsRed(t, runCLI(t, append(s.env(), "OPENVPC_SERVER="+dead), "--server", s.url, "vpc", "list"))
	})
	t.Run("config names the server", func(t *testing.T) {
		listsRed(t, runCLI(t, s.env(), "vpc", "list"))
	})
	t.Run("unreachable via flag", func(t *testing.T) {
		r := runCLI(t, s.env(), "--server", dead, "vpc", "list")
		checkFailure(t, r, "", []string{"cannot reach", "https://" + dead}, []string{"--server", dead, "vpc", "list"})
	})
	t.Run("unreachable via env", func(t *testing.T) {
		r := runCLI(t, append(s.env(), "OPENVPC_SERVER="+dead), "vpc", "get", "red")
		checkFailure(t, r, "", []string{"cannot reach", "https://" + dead}, []string{"vpc", "get", "red"})
	})
}

// TestProtocols: the API port speaks gRPC (HTTP/2 over TLS) and Connect's
// JSON over HTTP/1.1 POSTs, next to the CLI's protocol.
func TestProtocols(t *testing.T) {
	s := startServer(t, t.TempDir())
	red := okJSON[vpcJ](t, s, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")

	t.Run("gRPC", func(t *testing.T) {
		hc := s.http(true)
		t.Cleanup(hc.CloseIdleConnections)
		c := openvpcv1connect.NewVpcServiceClient(hc, s.url, connect.WithGRPC())
		resp, err := c.ListVpcs(context.Background(), connect.NewRequest(&pb.ListVpcsRequest{}))
		if err != nil {
			t.Fatalf("gRPC ListVpcs: %v", err)
		}
		if v := resp.Msg.Vpcs; len(v) != 1 || v[0].Id != red.ID || v[0].Vni != red.VNI {
			t.Errorf("gRPC ListVpcs = %v, want red", v)
		}
		_, err = c.GetVpc(context.Background(), connect.NewRequest(&pb.GetVpcRequest{Ref: "purple"}))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("gRPC GetVpc purple: err %v, want NotFound", err)
		}
		// What gRPC creates, the CLI sees.
		if _, err := c.CreateVpc(context.Background(), connect.NewRequest(&pb.CreateVpcRequest{Name: "grpc-made", Cidr: "10.7.0.0/16"})); err != nil {
			t.Fatalf("gRPC CreateVpc: %v", err)
		}
		if got := okJSON[vpcJ](t, s, "vpc", "get", "grpc-made"); got.CIDR != "10.7.0.0/16" {
			t.Errorf("vpc get grpc-made = %+v", got)
		}
	})

	post := func(t *testing.T, proc, body string) (int, []byte) {
		t.Helper()
		resp, err := s.http(true).Post(s.url+proc, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", proc, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	t.Run("Connect JSON", func(t *testing.T) {
		code, body := post(t, "/openvpc.v1.VpcService/ListVpcs", "{}")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var got struct {
			Vpcs []vpcJ `json:"vpcs"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		found := false
		for _, v := range got.Vpcs {
			found = found || v == red
		}
		if !found {
			t.Errorf("ListVpcs over Connect JSON = %+v, want red %+v among them", got.Vpcs, red)
		}
	})
	t.Run("Connect JSON error", func(t *testing.T) {
		code, body := post(t, "/openvpc.v1.VpcService/GetVpc", `{"ref":"purple"}`)
		if code != http.StatusNotFound {
			t.Errorf("status %d, want 404: %s", code, body)
		}
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Code != "not_found" || !strings.Contains(e.Message, "purple") {
			t.Errorf("error body %s (%v), want code not_found naming purple", body, err)
		}
	})
	t.Run("healthz and metrics", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/metrics"} {
			resp, err := s.http(false).Get(s.url + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: status %d", path, resp.StatusCode)
			}
		}
	})
}

// TestInsecureLoopback: --insecure-loopback serves cleartext without
// tokens, on loopback only; the secure default refuses a client without
// its config and says where it looked.
func TestInsecureLoopback(t *testing.T) {
	r := runCLI(t, nil, "server", "--insecure-loopback", "--listen", "0.0.0.0:0", "--data-dir", t.TempDir())
	if r.code == 0 || !strings.Contains(r.stderr, "only on a loopback address") {
		t.Fatalf("--insecure-loopback on 0.0.0.0: want a refusal, got %v", r)
	}
	s := startServer(t, t.TempDir())
	r = runCLI(t, nil, "--server", s.addr, "vpc", "list")
	checkFailure(t, r, "", []string{"no admin token", "--config", "OPENVPC_CONFIG"}, []string{"vpc", "list"})
	r = runCLI(t, append(s.env(), "OPENVPC_TOKEN=0123456789ab.0123456789abcdef0123456789abcdef"), "--server", s.addr, "vpc", "list")
	checkFailure(t, r, "unauthenticated", []string{"admin token is not valid"}, []string{"vpc", "list"})
	if st, err := os.Stat(s.config); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client config %s: %v, mode %v; want 0600", s.config, err, st.Mode())
	}

	addr := freeAddr(t)
	cmd := exec.Command(bin, "server", "--insecure-loopback", "--listen", addr, "--data-dir", t.TempDir(), "--log-level", "warn")
	cmd.Env = baseEnv()
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = runCLI(t, nil, "--server", "http://"+addr, "vpc", "create", "--name", "dev", "--cidr", "10.0.0.0/16")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("insecure server: %v", r)
		}
	}
	if r := runCLI(t, nil, "--server", "http://"+addr, "vpc", "list"); !strings.Contains(r.stdout, "dev") {
		t.Fatalf("insecure server: vpc list %v", r)
	}
}

// TestOwnCA: a server given --ca-cert/--ca-key issues under that CA (its
// client config trusts it); a store that has a CA keeps it: restarting
// with another is refused.
func TestOwnCA(t *testing.T) {
	dir := t.TempDir()
	writeCA := func(name string) (certFile, keyFile string, certPEM []byte) {
		c, k, err := pki.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := os.WriteFile(certFile, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, c
	}
	cert, key, certPEM := writeCA("ours")
	data := t.TempDir()
	s := startServer(t, data, "--ca-cert", cert, "--ca-key", key)
	if s.admin.CA != string(certPEM) {
		t.Fatal("the client config does not carry the CA given with --ca-cert")
	}
	s.ok(t, "vpc", "list")
	s.stop(t)
	other, otherKey, _ := writeCA("other")
	r := runCLI(t, nil, "server", "--listen", freeAddr(t), "--data-dir", data, "--ca-cert", other, "--ca-key", otherKey, "--admin-config", filepath.Join(dir, "cfg"))
	if r.code == 0 || !strings.Contains(r.stderr, "already has a different CA") {
		t.Fatalf("restart with another CA: want a refusal, got %v", r)
	}
}
