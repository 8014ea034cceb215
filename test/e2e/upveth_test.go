package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/nsthread"
)

// TestUpVeth: `openvpc up --nic veth`, run inside a namespace of the
// test's own (so the veths' host ends are made there, not in the root
// namespace), runs instances that reach each other across its hosts.
// Its underlay is loopback, where the kernel fast path cannot redirect:
// the Go story carries every packet.
func TestUpVeth(t *testing.T) {
	prerequisites(t, "ping")
	ours := leakCheck(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	tag := "ovpce2e-" + hex.EncodeToString(rnd[:])
	roomTags.Store(tag, true)
	m := newMachine(t, tag+"-up")
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		t.Fatal(err)
	}
	up(t, h, "lo")
	h.Close()
	dir, config := t.TempDir(), filepath.Join(t.TempDir(), "config")
	cloud := start(t, m.ns, nil, bin, "up", "--listen", "127.0.0.1:7171", "--data-dir", dir, "--hosts", "2", "--edges", "0", "--nic", "veth",
		"--internet-proxy", "", "--admin-config", config, "--log-level", "info")
	cli := func(args ...string) (string, int) {
		return run(t, m.ns, 30*time.Second, bin, append([]string{"--config", config}, args...)...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, code := cli("vpc", "list"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("openvpc up did not answer in 30 s:\n%s", cloud.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ok := func(args ...string) string {
		out, code := cli(args...)
		if code != 0 {
			t.Fatalf("openvpc %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	ok("vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	ok("subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	var a, b instanceJ
	for _, x := range []struct {
		inst *instanceJ
		name string
		host string
	}{{&a, "a", "host-1"}, {&b, "b", "host-2"}} {
		if err := json.Unmarshal([]byte(ok("instance", "run", "--subnet", "red-a", "--name", x.name, "--host", x.host, "--wait", "-o", "json")), x.inst); err != nil {
			t.Fatal(err)
		}
	}
	ours.instances = []string{a.ID, b.ID}
	// The instance's NIC is a veth whose host end is in up's namespace.
	err = nsthread.In(m.ns, func() error {
		_, err := netlink.LinkByName(nic.VethHostName(a.ID))
		return err
	})
	if err != nil {
		t.Errorf("no veth host end %s in up's namespace: %v", nic.VethHostName(a.ID), err)
	}
	out, code := cli("exec", "a", "--", "ping", "-c", "3", "-i", "0.2", "-W", "2", b.PrivateIP)
	if code != 0 || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping a → b under openvpc up --nic veth: exit %d\n%s\n%s", code, out, cloud.out)
	}
}
