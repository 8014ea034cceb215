package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upProcess is an `openvpc up` subprocess.
type upProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr
	exited chan struct{}
}

// upWirePort is a free UDP port for up's hosts, so that the test's cloud
// does not meet a running `openvpc up` on 6081.
func upWirePort(t *testing.T) string { return strconv.Itoa(freeUDPPort(t)) }

// startUp runs `openvpc up` with args (after a free --listen, --log-level
// warn and netstack NICs), and stops it at cleanup.
func startUp(t *testing.T, args ...string) *upProcess {
	t.Helper()
	p := &upProcess{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"up", "--listen", freeAddr(t), "--log-level", "warn", "--nic", "netstack"}, args...)...)
	p.cmd.Env = baseEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// banner waits for the banner up prints once it is up.
func (p *upProcess) banner(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out := p.out.String(); strings.Contains(out, "Press Ctrl-C to stop.") {
			return out
		}
		select {
		case <-p.exited:
			t.Fatalf("openvpc up exited (code %d) before it was up:\n%s", p.cmd.ProcessState.ExitCode(), p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("openvpc up not up after 30 s:\n%s", p.out)
		}
	}
}

// stop sends SIGTERM and checks for a clean exit.
func (p *upProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("openvpc up did not exit within %v of SIGTERM:\n%s", stopTimeout, p.out)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("openvpc up exited with code %d after SIGTERM:\n%s", code, p.out)
	}
}

// wait waits for up to exit on its own and returns its exit code.
func (p *upProcess) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("openvpc up still running after 30 s:\n%s", p.out)
	}
	return p.cmd.ProcessState.ExitCode()
}

// TestUpRestartBanner: a new cloud's banner shows how to make red; after a
// restart it says what the cloud already holds instead of suggesting to
// create red again.
func TestUpRestartBanner(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "client-config")
	args := []string{"--hosts", "1", "--edges", "0", "--data-dir", filepath.Join(dir, "data"), "--admin-config", config, "--wire-port", upWirePort(t)}
	first := startUp(t, args...)
	banner := first.banner(t)
	if !strings.Contains(banner, "openvpc vpc create --name red") {
		t.Errorf("a new cloud's banner does not show how to create red:\n%s", banner)
	}
	if !strings.Contains(banner, "The client config (server, CA, admin token) is "+config+"\n") {
		t.Errorf("the banner does not name the client config %s:\n%s", config, banner)
	}
	if r := runCLI(t, []string{"OPENVPC_CONFIG=" + config}, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16"); r.code != 0 {
		t.Fatalf("vpc create: %v", r)
	}
	first.stop(t)

	banner = startUp(t, args...).banner(t)
	if strings.Contains(banner, "vpc create") {
		t.Errorf("after a restart the banner suggests creating red again:\n%s", banner)
	}
	for _, want := range []string{"1 VPC (red)", "openvpc vpc list"} {
		if !strings.Contains(banner, want) {
			t.Errorf("after a restart the banner does not say %q:\n%s", want, banner)
		}
	}
}

// TestUpBusyPortWritesNoConfig: an up that fails because a port it needs
// is taken (the hosts' underlay, the internet's proxy) exits non-zero,
// naming the port, and leaves no client config behind.
func TestUpBusyPortWritesNoConfig(t *testing.T) {
	wirePort := upWirePort(t)
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	for _, tc := range []struct {
		name, busy string
		args       []string
	}{
		{"underlay", udp.LocalAddr().String(), []string{"--wire-port", strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)}},
		{"proxy", tcp.Addr().String(), []string{"--wire-port", wirePort, "--internet-proxy", tcp.Addr().String()}},
	} {
		dir := t.TempDir()
		config := filepath.Join(dir, "client-config")
		p := startUp(t, append([]string{"--hosts", "1", "--data-dir", filepath.Join(dir, "data"), "--admin-config", config}, tc.args...)...)
		if code := p.wait(t); code == 0 {
			t.Errorf("%s busy: openvpc up exited 0:\n%s", tc.name, p.out)
		}
		if !strings.Contains(p.out.String(), tc.busy) {
			t.Errorf("%s busy: the error does not name %s:\n%s", tc.name, tc.busy, p.out)
		}
		if _, err := os.Stat(config); !os.IsNotExist(err) {
			t.Errorf("%s busy: openvpc up failed but wrote a client config (%v):\n%s", tc.name, err, p.out)
		}
	}
}
