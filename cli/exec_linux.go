package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
)

// execIn replaces this process with argv inside the instance's network
// namespace. setns applies to one thread, and execve keeps the calling
// thread's namespaces: so the thread is locked, moved, and then execs —
// the same as `ip netns exec`, including its private mount namespace in
// which /etc/netns/<ns>/<file> (the VPC resolver's resolv.conf) is
// bind-mounted over /etc/<file>.
func execIn(inst *pb.Instance, argv []string) error {
	name := nic.NamespaceName(inst.Id)
	path := filepath.Join(nic.NetnsDir, name)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("instance %s (%s) has no network namespace %s on this machine: it runs on host %s, whose agent must use --nic tun; run this command as root on that host's machine",
			inst.Id, inst.Name, path, inst.HostId)
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("command %q: %w", argv[0], err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	// Never unlocked: this thread either becomes the command or reports
	// the error, after which the process exits.
	runtime.LockOSThread()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("entering %s needs root (CAP_SYS_ADMIN): run it with sudo", name)
		}
		return fmt.Errorf("entering %s: %w", name, err)
	}
	unix.Close(fd)
	if err := bindEtc(name); err != nil {
		return err
	}
	return syscall.Exec(bin, argv, os.Environ())
}

// bindEtc does what `ip netns exec` does for the files of /etc/netns/name:
// in a mount namespace of this thread's own (which the exec'd command
// keeps), each is bind-mounted over its namesake in /etc. Nothing to
// mount, nothing is unshared.
func bindEtc(name string) error {
	dir := filepath.Join(nic.EtcNetnsDir, name)
	files, err := os.ReadDir(dir)
	if err != nil || len(files) == 0 {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("a mount namespace for %s: %w", name, err)
	}
	// Mounts made here must not propagate back to the host's namespace.
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount for %s: %w", name, err)
	}
	for _, f := range files {
		src, dst := filepath.Join(dir, f.Name()), filepath.Join("/etc", f.Name())
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s over %s: %w", src, dst, err)
		}
	}
	return nil
}
