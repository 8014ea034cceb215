package nic

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/nsthread"
)

// NetnsDir is where named network namespaces live (as with `ip netns`):
// a file per namespace, bind-mounted over from /proc/…/ns/net so the
// namespace outlives the process that made it.
const NetnsDir = "/run/netns"

// Namespaces records which instance namespaces one agent created, in a
// state directory that the agent locks while it runs. /run/netns is shared
// by every agent on the machine (each may run in its own host namespace),
// so a namespace's name cannot say who owns it; the state directory can,
// and it survives a crash (kill -9) so the restarted agent adopts or
// removes what it left. One state directory per agent: the lock refuses a
// second agent on the same one.
type Namespaces struct {
	dir  string
	lock *os.File

	mu    sync.Mutex
	owned map[string]bool
}

const (
	stateFile = "namespaces"
	lockFile  = "lock"
)

// OpenNamespaces locks dir (creating it) and reads the namespaces a
// previous agent with the same state directory left behind.
func OpenNamespaces(dir string) (*Namespaces, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nic: state directory: %w (give the agent a writable --state-dir)", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nic: state directory: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("nic: state directory %s is in use by another host agent on this machine: give each agent its own --state-dir", dir)
	}
	n := &Namespaces{dir: dir, lock: lock, owned: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil
	}
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("nic: state directory: %w", err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if name := strings.TrimSpace(s.Text()); strings.HasPrefix(name, NamespacePrefix) && !strings.Contains(name, "/") {
			n.owned[name] = true
		}
	}
	return n, nil
}

// Dir is the state directory.
func (n *Namespaces) Dir() string { return n.dir }

// Owned lists the namespaces this agent created and has not removed.
func (n *Namespaces) Owned() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.owned))
	for name := range n.owned {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Owns reports whether name is one of this agent's namespaces.
func (n *Namespaces) Owns(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owned[name]
}

// Claim records name as this agent's before it is created, so that a crash
// right after creating it still leaves a record to clean up from.
func (n *Namespaces) Claim(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owned[name] {
		return nil
	}
	n.owned[name] = true
	if err := n.save(); err != nil {
		delete(n.owned, name)
		return err
	}
	return nil
}

// Remove deletes namespace name (processes still inside keep it alive
// until they exit, but it has no name any more) and forgets it.
func (n *Namespaces) Remove(name string) error {
	if err := deleteNamed(name); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.owned, name)
	return n.save()
}

// save writes the owned set atomically: a crash mid-write leaves the old
// list or the new one, never half of one.
func (n *Namespaces) save() error {
	var b strings.Builder
	for name := range n.owned {
		b.WriteString(name)
		b.WriteByte('\n')
	}
	tmp := filepath.Join(n.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("nic: recording namespaces: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(n.dir, stateFile)); err != nil {
		return fmt.Errorf("nic: recording namespaces: %w", err)
	}
	return nil
}

// Close releases the state directory's lock.
func (n *Namespaces) Close() error { return n.lock.Close() }

// namespaceExists reports whether /run/netns/name exists.
func namespaceExists(name string) bool {
	_, err := os.Lstat(filepath.Join(NetnsDir, name))
	return err == nil
}

// EtcNetnsDir holds a namespace's own /etc files, as with `ip netns`:
// `ip netns exec` and `openvpc exec` bind-mount /etc/netns/<ns>/<file>
// over /etc/<file> for the programs they run.
const EtcNetnsDir = "/etc/netns"

// writeResolvConf gives namespace name a resolv.conf naming the VPC
// resolver at addr.
func writeResolvConf(name string, addr netip.Addr) error {
	dir := filepath.Join(EtcNetnsDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nic: resolv.conf of %s: %w", name, err)
	}
	conf := "# the VPC resolver, answered by the host (written by openvpc)\nnameserver " + addr.String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("nic: resolv.conf of %s: %w", name, err)
	}
	return nil
}

// deleteNamed unmounts and removes /run/netns/name and its /etc/netns
// files; a name already gone is not an error.
func deleteNamed(name string) error {
	if err := os.RemoveAll(filepath.Join(EtcNetnsDir, name)); err != nil {
		return fmt.Errorf("nic: removing %s: %w", filepath.Join(EtcNetnsDir, name), err)
	}
	p := filepath.Join(NetnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("nic: unmounting namespace %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("nic: removing namespace %s: %w", name, err)
	}
	return nil
}

// openNamed opens namespace name, creating it if it does not exist (or if
// a crash left its file without the mount, which is not a namespace).
func openNamed(name string) (netns.NsHandle, error) {
	if h, err := netns.GetFromName(name); err == nil {
		var st unix.Statfs_t
		if unix.Fstatfs(int(h), &st) == nil && st.Type == unix.NSFS_MAGIC {
			return h, nil
		}
		h.Close()
		if err := deleteNamed(name); err != nil {
			return netns.None(), err
		}
	}
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return netns.None(), fmt.Errorf("nic: %w", err)
	}
	p := filepath.Join(NetnsDir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("nic: creating namespace %s: %w", name, err)
	}
	f.Close()
	var h netns.NsHandle
	err = nsthread.Run(func() error {
		// unshare moves only this locked thread into the new namespace;
		// nsthread.Run moves it back.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), p, "none", unix.MS_BIND, ""); err != nil {
			return err
		}
		h, err = netns.Get()
		return err
	})
	if err != nil {
		_ = deleteNamed(name)
		return netns.None(), fmt.Errorf("nic: creating namespace %s: %w", name, err)
	}
	return h, nil
}

// dialIn opens a connection from inside namespace ns, so the socket is
// the instance's own (TUN and veth NICs).
func dialIn(ns netns.NsHandle, ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsthread.In(ns, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// dialPingIn opens a raw ICMP socket inside namespace ns (the agent is
// root; ping sockets are off by default in a namespace).
func dialPingIn(ns netns.NsHandle, src, dst netip.Addr) (net.Conn, error) {
	var c *net.IPConn
	err := nsthread.In(ns, func() error {
		var err error
		c, err = net.DialIP("ip4:icmp", &net.IPAddr{IP: src.AsSlice()}, &net.IPAddr{IP: dst.AsSlice()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rawPing{c}, nil
}
