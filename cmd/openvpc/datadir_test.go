package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDataDirInUse: a second `openvpc server` or `openvpc up` on a data dir
// a running server holds fails at once, naming the dir and the holder's pid.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir)
	want := fmt.Sprintf("data dir %s is in use by pid %d", dir, first.cmd.Process.Pid)
	for _, args := range [][]string{
		{"server", "--listen", freeAddr(t), "--data-dir", dir, "--admin-config", ""},
		{"up", "--listen", freeAddr(t), "--data-dir", dir, "--hosts", "1", "--edges", "0", "--nic", "netstack",
			"--internet-proxy", "", "--wire-port", "16081", "--admin-config", filepath.Join(t.TempDir(), "config")},
	} {
		start := time.Now()
		r := runCLI(t, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("openvpc %s on a data dir in use: want a failure saying %q; got %v", args[0], want, r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("openvpc %s took %v to fail", args[0], d)
		}
	}
	// Relative, it is named as the user would write it.
	cmd := exec.Command(bin, "server", "--listen", freeAddr(t), "--data-dir", filepath.Base(dir), "--admin-config", "")
	cmd.Dir, cmd.Env = filepath.Dir(dir), baseEnv()
	out, err := cmd.CombinedOutput()
	if want := fmt.Sprintf("data dir ./%s is in use by pid %d", filepath.Base(dir), first.cmd.Process.Pid); err == nil || !strings.Contains(string(out), want) {
		t.Errorf("relative data dir: want %q; got %v:\n%s", want, err, out)
	}
	// The first server is unharmed, and once it stops the dir is free.
	first.ok(t, "vpc", "list")
	first.stop(t)
	startServer(t, dir)
}

// TestStartupEndsOnSignal: a start-up of server or up that waits (here
// embedded etcd, on its database held by another process) ends on SIGTERM
// or SIGINT.
func TestStartupEndsOnSignal(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir).stop(t)
	db, err := os.OpenFile(filepath.Join(dir, "etcd", "member", "snap", "db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := syscall.Flock(int(db.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sig  syscall.Signal
		args []string
	}{
		{syscall.SIGTERM, []string{"server"}},
		{syscall.SIGINT, []string{"server"}},
		{syscall.SIGINT, []string{"up", "--hosts", "1", "--edges", "0", "--nic", "netstack", "--internet-proxy", "", "--wire-port", "16082", "--metrics", ""}},
	} {
		sig := c.sig
		cmd := exec.Command(bin, append(c.args, "--listen", freeAddr(t), "--data-dir", dir, "--admin-config", "")...)
		cmd.Env, cmd.SysProcAttr = baseEnv(), childAttr()
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
			t.Fatalf("%s exited while etcd's database was locked:\n%s", c.args[0], &out)
		case <-time.After(time.Second):
		}
		cmd.Process.Signal(sig)
		select {
		case <-exited:
			if !strings.Contains(out.String(), "interrupted") {
				t.Errorf("%s, after %v: %s, want it to say the start was interrupted", c.args[0], sig, &out)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s still starting 5s after %v:\n%s", c.args[0], sig, &out)
		}
	}
}
