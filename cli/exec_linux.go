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
// the same as `ip netns exec`, without its private mount namespace, which
// the instance does not need.
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
	return syscall.Exec(bin, argv, os.Environ())
}
