package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/vpceproxy"
)

// TestServiceS3Endpoints (review findings 6 and 7): `openvpc service s3
// --endpoints ADDR` believes a PROXY header only from a registered node
// of its service, and enforces endpoint policies without --node: an
// endpoint it does not know is denied, a known one is served.
func TestServiceS3Endpoints(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "client-config")
	up := startUp(t, "--hosts", "1", "--edges", "1", "--s3=false", "--data-dir", filepath.Join(dir, "data"), "--admin-config", config,
		"--wire-port", upWirePort(t), "--internet-proxy", "")
	up.banner(t)
	env := []string{"OPENVPC_CONFIG=" + config}
	addr := freeAddr(t)
	const name = "com.openvpc.test.s3"
	svc := &upProcess{out: &syncBuffer{}, exited: make(chan struct{})}
	svc.cmd = exec.Command(bin, "service", "s3", "--endpoints", addr, "--listen", "", "--name", name, "--poll", "200ms")
	svc.cmd.Env = append(baseEnv(), env...)
	svc.cmd.Stdout, svc.cmd.Stderr = svc.out, svc.out
	svc.cmd.SysProcAttr = childAttr()
	if err := svc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.cmd.Wait(); close(svc.exited) }()
	t.Cleanup(func() { _ = svc.cmd.Process.Kill(); <-svc.exited })

	// request sends GET / through a connection that claims endpoint vpce;
	// 0 when the store closed it unread.
	request := func(vpce string) int {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return -1
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		o := vpceproxy.Origin{Source: netip.MustParseAddrPort("10.0.1.5:40000"), Dest: netip.MustParseAddrPort("203.0.113.130:80"), Endpoint: vpce, VPC: "vpc-0000000000000001"}
		if vpceproxy.Write(c, o) != nil {
			return 0
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: s3\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually := func(what string, want int, vpce string) {
		t.Helper()
		got := -1
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = request(vpce); got == want {
				return
			}
		}
		t.Fatalf("%s: %d, want %d\nservice:\n%s", what, got, want, svc.out)
	}
	// No node of the service is registered: this test's loopback address
	// is nobody the store trusts, whatever header it sends.
	eventually("before the node is registered", 0, "vpce-0000000000000001")
	// The log line reaches svc.out through a pipe and a copying goroutine,
	// so after the connection closed it may still be on its way.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(svc.out.String(), "no service node"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the refusal is not logged:\n%s", svc.out)
		}
	}

	conn, err := (&cli.Options{Config: config}).Conn()
	if err != nil {
		t.Fatal(err)
	}
	ep := openvpcv1connect.NewEndpointServiceClient(conn.HTTP, conn.URL)
	if _, err := ep.RegisterService(context.Background(), connect.NewRequest(&pb.RegisterServiceRequest{Name: name, Cidrs: []string{"203.0.113.140/32"}, NodeAddresses: []string{"127.0.0.1"}})); err != nil {
		t.Fatal(err)
	}
	// Now the connection is believed, but an endpoint the store does not know gets nothing.
	eventually("an unknown endpoint", http.StatusForbidden, "vpce-0000000000000001")

	r := runCLI(t, env, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	if r.code != 0 {
		t.Fatal(r)
	}
	r = runCLI(t, env, "endpoint", "create", "--vpc", "red", "--service", name, "--route-table", "main", "-o", "json")
	var e struct{ Id string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &e) != nil {
		t.Fatal(r)
	}
	eventually("a known endpoint", http.StatusOK, e.Id)
}
