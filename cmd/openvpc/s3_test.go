package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServiceS3Node: `openvpc service s3 --node` runs the store and its
// service node apart from `openvpc up` (started with --s3=false): it
// registers the service, learns the endpoints and edges from the API,
// and an instance reaches it through a gateway endpoint — the store logs
// the instance's private address and the vpce id.
func TestServiceS3Node(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "client-config")
	wire := upWirePort(t)
	up := startUp(t, "--hosts", "1", "--edges", "1", "--s3=false", "--data-dir", filepath.Join(dir, "data"), "--admin-config", config,
		"--wire-port", wire, "--internet-proxy", "")
	up.banner(t)
	env := []string{"OPENVPC_CONFIG=" + config}
	svc := &upProcess{out: &syncBuffer{}, exited: make(chan struct{})}
	svc.cmd = exec.Command(bin, "service", "s3", "--node", "127.0.1.250", "--wire-port", wire, "--listen", "", "--poll", "200ms")
	svc.cmd.Env = append(baseEnv(), env...)
	svc.cmd.Stdout, svc.cmd.Stderr = svc.out, svc.out
	svc.cmd.SysProcAttr = childAttr()
	if err := svc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.cmd.Wait(); close(svc.exited) }()
	t.Cleanup(func() { _ = svc.cmd.Process.Kill(); <-svc.exited })

	ok := func(args ...string) string {
		t.Helper()
		r := runCLI(t, env, args...)
		if r.code != 0 {
			t.Fatalf("openvpc %s: %v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
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
	want := fmt.Sprintf("source=%s endpoint=%s", inst.PrivateIp, ep.Id)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(svc.out.String(), want) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store's log does not show %q twice:\n%s", want, svc.out)
		}
	}
}
