package main

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openvpc/openvpc/host/nic"
)

// startHost runs `openvpc host` as its own process, as on a real machine.
func startHost(t *testing.T, s *apiServer, id, underlay string, port int) {
	t.Helper()
	cmd := exec.Command(bin, "host", "--server", s.url, "--host-id", id, "--underlay", underlay,
		"--join-token", s.joinToken(t, "host"), "--cert-dir", t.TempDir(),
		"--wire-port", strconv.Itoa(port), "--api", "127.0.0.1:0", "--log-level", "warn",
		"--state-dir", t.TempDir()) // as root, --nic auto makes TUN namespaces: record them per test
	cmd.Env = baseEnv()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("host %s exited with %d after SIGTERM:\n%s", id, code, out)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("host %s did not stop within 5s of SIGTERM", id)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.ok(t, "host", "list"), id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s did not register:\n%s", id, out)
		}
	}
}

// TestSeparateHostProcesses: a server and two `openvpc host` processes,
// each with its own underlay address; instances on them ping across.
func TestSeparateHostProcesses(t *testing.T) {
	s := startServer(t, t.TempDir())
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 251)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	startHost(t, s, "host-a", "127.0.1.1", port)
	startHost(t, s, "host-b", "127.0.1.2", port)
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	s.ok(t, "instance", "run", "--subnet", "red-a", "--name", "a", "--host", "host-a", "--wait")
	s.ok(t, "instance", "run", "--subnet", "red-a", "--name", "b", "--host", "host-b", "--wait")
	out := s.ok(t, "ping", "a", "b", "-c", "3")
	if !strings.Contains(out, "3 sent, 3 received") {
		t.Fatalf("ping a → b across host processes:\n%s", out)
	}
	r := s.run(t, "ping", "a", "b", "--source", "10.0.1.99", "-c", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "spoofed-source") {
		t.Fatalf("forged ping: %s", r)
	}
	if nic.TUNAvailable() {
		// As root the agents chose TUN NICs: the instance is a namespace
		// that exec enters, and the command's exit code is exec's.
		out := s.ok(t, "instance", "exec", "a", "--", "cat", "/proc/net/dev")
		if !strings.Contains(out, nic.DeviceName+":") {
			t.Fatalf("exec a -- cat /proc/net/dev shows no %s:\n%s", nic.DeviceName, out)
		}
		if r := s.run(t, "instance", "exec", "b", "--", "sh", "-c", "exit 7"); r.code != 7 {
			t.Fatalf("exec b -- sh -c 'exit 7': %s", r)
		}
	}
}
