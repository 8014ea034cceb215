//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataDirLock holds a data dir for this process: an exclusive flock on
// DataDir/lock, which the kernel releases when the process ends, however
// it ends. Embedded etcd would otherwise wait silently, for ever, on the
// bbolt file lock of a data dir another process has open.
type dataDirLock struct{ f *os.File }

// lockDataDir takes dir's lock without waiting, or says which process has it.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = "pid " + strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("data dir %s is in use by %s (another openvpc server or up); stop it, or choose another --data-dir", displayDir(dir), holder)
	}
	// The pid is for the message above; the lock is the flock, not the file.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// release gives the data dir up.
func (l *dataDirLock) release() {
	if l != nil {
		l.f.Close()
	}
}

// displayDir writes a relative dir as a user would type it: ./.openvpc.
func displayDir(dir string) string {
	dir = filepath.Clean(dir)
	if filepath.IsAbs(dir) || dir == "." || strings.HasPrefix(dir, "./") || strings.HasPrefix(dir, "../") {
		return dir
	}
	return "./" + dir
}
