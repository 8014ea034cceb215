package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHostRemoveConfirms: removing a host that still runs instances asks
// first on a terminal (and does nothing unless told yes); without a
// terminal it refuses unless given --yes.
func TestHostRemoveConfirms(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.registerHost(t, "host-b", "127.0.1.2")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")
	okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "db", "--host", "host-b")

	stillThere := func(t *testing.T, host string) {
		t.Helper()
		if !strings.Contains(s.ok(t, "host", "list"), host) {
			t.Fatalf("%s was removed", host)
		}
		if got := okJSON[instJ](t, s, "instance", "get", web.ID); host == "host-a" && got.State == "terminated" {
			t.Fatalf("web was terminated")
		}
	}
	t.Run("no terminal, no --yes", func(t *testing.T) {
		s.fail(t, "", []string{"host-a runs 1 instance(s) (web)", "--yes"}, "host", "remove", "host-a")
		stillThere(t, "host-a")
	})
	t.Run("terminal, answered no", func(t *testing.T) {
		r := onTerminal(t, s, "n\n", "host", "remove", "host-a")
		if r.code == 0 || !strings.Contains(r.stderr, "Remove host-a? [y/N]") || !strings.Contains(r.stderr, "not removed") {
			t.Errorf("want the question and a refusal, got %s", r)
		}
		stillThere(t, "host-a")
	})
	t.Run("terminal, answered yes", func(t *testing.T) {
		r := onTerminal(t, s, "y\n", "host", "remove", "host-b")
		if r.code != 0 || !strings.Contains(r.stderr, "Remove host-b? [y/N]") || !strings.Contains(r.stdout, "removed host host-b") {
			t.Errorf("want the question and the removal, got %s", r)
		}
	})
	t.Run("--yes", func(t *testing.T) {
		if out := s.ok(t, "host", "remove", "host-a", "--yes"); !strings.Contains(out, "terminated "+web.ID) {
			t.Errorf("host remove --yes: %s", out)
		}
	})
}

// onTerminal runs a client command of s with a pseudo-terminal as its
// stdin, typing input into it.
func onTerminal(t *testing.T, s *apiServer, input string, args ...string) result {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptm.Close()
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", s.addr}, args...)...)
	cmd.Env = append(baseEnv(), s.env()...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := ptm.WriteString(input); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("openvpc %s on a terminal: did not finish (%v)", strings.Join(args, " "), err)
	}
	return r
}
