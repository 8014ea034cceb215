package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/servicenode"
)

// TestServiceS3Node: `openvpc service s3 --node` runs the store and its
// service node apart from `openvpc up` (started with --s3=false): it
// registers the service, learns the endpoints and edges from the API,
// and an instance reaches it through a gateway endpoint — the store logs
// the instance's private address and the vpce id.
func TestServiceS3Node(t *testing.T) { testServiceS3Node(t, false) }

// TestServiceS3NodeCertificate: the same with the node's own certificate
// of role service and no admin config: the administrator registers the
// service with the node's address and makes a token; the node joins,
// reads its service's catalog and serves, and makes no call it may not
// (no security event names it).
func TestServiceS3NodeCertificate(t *testing.T) { testServiceS3Node(t, true) }

func testServiceS3Node(t *testing.T, withCert bool) {
	dir := t.TempDir()
	config := filepath.Join(dir, "client-config")
	wire := upWirePort(t)
	up := startUp(t, "--hosts", "1", "--edges", "1", "--s3=false", "--data-dir", filepath.Join(dir, "data"), "--admin-config", config,
		"--wire-port", wire, "--internet-proxy", "")
	up.banner(t)
	env := []string{"OPENVPC_CONFIG=" + config}
	ok := func(args ...string) string {
		t.Helper()
		r := runCLI(t, env, args...)
		if r.code != 0 {
			t.Fatalf("openvpc %s: %v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	args := []string{"service", "s3", "--node", "127.0.1.250", "--wire-port", wire, "--listen", "", "--poll", "200ms"}
	svcEnv := env
	if withCert {
		ok("service", "register", "com.openvpc.local.s3", "--cidr", "203.0.113.130/32", "--node", "127.0.1.250")
		token := strings.TrimSpace(ok("token", "create", "--role", "service", "--host-id", "s3-1"))
		admin, err := pki.LoadClientConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--server", admin.Server, "--node-id", "s3-1", "--join-token", token, "--cert-dir", filepath.Join(dir, "s3-1"))
		// No admin credentials anywhere the node could find them.
		svcEnv = []string{"OPENVPC_CONFIG=" + filepath.Join(dir, "no-config")}
	}
	svc := &upProcess{out: &syncBuffer{}, exited: make(chan struct{})}
	svc.cmd = exec.Command(bin, args...)
	svc.cmd.Env = append(baseEnv(), svcEnv...)
	svc.cmd.Stdout, svc.cmd.Stderr = svc.out, svc.out
	svc.cmd.SysProcAttr = childAttr()
	if err := svc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.cmd.Wait(); close(svc.exited) }()
	t.Cleanup(func() { _ = svc.cmd.Process.Kill(); <-svc.exited })

	ok("vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	ok("subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	var inst struct{ PrivateIp string }
	if err := json.Unmarshal([]byte(ok("instance", "run", "--subnet", "red-a", "--name", "web", "--wait", "-o", "json")), &inst); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(ok("service", "list"), "127.0.1.250"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the service did not register:\n%s", svc.out)
		}
	}
	var ep struct{ Id string }
	if err := json.Unmarshal([]byte(ok("endpoint", "create", "--vpc", "red", "--service", "com.openvpc.local.s3", "--route-table", "main", "-o", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	local := freeAddr(t)
	fwd := exec.Command(bin, "forward", "web", "--listen", local, "--to", "203.0.113.130:80")
	fwd.Env = append(baseEnv(), env...)
	fwd.SysProcAttr = childAttr()
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fwd.Process.Kill(); _ = fwd.Wait() })

	hc := &http.Client{Timeout: 3 * time.Second}
	put := func(path string) (int, error) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+local+path, strings.NewReader("hello"))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, err := put("/red-data")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bucket through the endpoint: %d %v\nservice:\n%s", code, err, svc.out)
		}
	}
	if code, err := put("/red-data/hello.txt"); err != nil || code != http.StatusOK {
		t.Fatalf("put: %d %v", code, err)
	}
	resp, err := hc.Get("http://" + local + "/red-data/hello.txt")
	if err != nil {
		t.Fatalf("get through the endpoint: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Fatalf("get through the endpoint: %d %q, want 200 \"hello\"", resp.StatusCode, body)
	}
	want := fmt.Sprintf("source=%s endpoint=%s", inst.PrivateIp, ep.Id)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(svc.out.String(), want) < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store's log does not show %q three times:\n%s", want, svc.out)
		}
	}
	if withCert {
		if !strings.Contains(svc.out.String(), "service node joined") {
			t.Errorf("the service node did not log joining with its certificate:\n%s", svc.out)
		}
		var evs []struct{ HostId, Reason string }
		if err := json.Unmarshal([]byte(ok("events", "-o", "json")), &evs); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.HostId == "s3-1" {
				t.Errorf("service node s3-1 made a call its role may not: %s event", e.Reason)
			}
		}
		// Removed, its certificate is revoked: its next read is refused,
		// and it stops rather than serve on what it knew.
		ok("host", "remove", "s3-1", "--yes")
		select {
		case <-svc.exited:
		case <-time.After(15 * time.Second):
			t.Fatalf("service node s3-1 still runs after its removal:\n%s", svc.out)
		}
		if !strings.Contains(svc.out.String(), "certificate of service s3-1 was revoked") {
			t.Errorf("service node s3-1 stopped without saying its certificate was revoked:\n%s", svc.out)
		}
	}
}

// TestCatalogOf: the server's catalog becomes what servicenode.Catalog
// holds; an entry that does not parse is left out, so denied.
func TestCatalogOf(t *testing.T) {
	eps, edges, nodes := catalogOf(&pb.DescribeServiceCatalogResponse{
		Endpoints: []*pb.CatalogEndpoint{
			{Id: "vpce-00000000000000a1", VpcId: "vpc-00000000000000b2", Vni: 7, PolicyDocument: `{"Statement":[]}`},
			{Id: "not-an-endpoint", VpcId: "vpc-00000000000000b2", Vni: 8},
			{Id: "vpce-00000000000000a3", VpcId: "subnet-00000000000000b2", Vni: 9},
		},
		EdgeAddresses: []string{"10.0.0.5", "bogus"},
		NodeAddresses: []string{"10.0.0.20"},
	})
	want := servicenode.CatalogEndpoint{Endpoint: servicenode.Endpoint{ID: 0xa1, VNI: 7, VPC: 0xb2}, Policy: `{"Statement":[]}`}
	if len(eps) != 1 || eps[0] != want {
		t.Errorf("endpoints %+v, want only %+v", eps, want)
	}
	if !slices.Equal(edges, []netip.Addr{netip.MustParseAddr("10.0.0.5")}) || !slices.Equal(nodes, []netip.Addr{netip.MustParseAddr("10.0.0.20")}) {
		t.Errorf("edges %v, nodes %v", edges, nodes)
	}
}

// TestServiceS3CertificateFlags: what a service node with a certificate
// needs is asked for by name, before anything is dialed.
func TestServiceS3CertificateFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--endpoints", freeAddr(t), "--join-token", "x"}, "give --node"},
		{[]string{"--node", "127.0.1.251", "--join-token", "x"}, "give --node-id"},
		{[]string{"--node", "127.0.1.251", "--node-id", "s3-1", "--join-token", "x", "--cert-dir", t.TempDir()}, "not a join token"},
	} {
		r := runCLI(t, nil, append([]string{"service", "s3", "--listen", ""}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("openvpc service s3 %s: %v\nwant an error saying %q", strings.Join(tc.args, " "), r, tc.want)
		}
	}
}
