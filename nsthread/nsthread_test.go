//go:build linux

package nsthread

import (
	"errors"
	"os"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestRunReturnsFnsError(t *testing.T) {
	want := errors.New("from fn")
	if err := Run(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Run: %v, want %v", err, want)
	}
}

// TestInAndBack: fn runs inside a namespace it made (unshare) or was
// given (In), and afterwards no thread of the process is left there.
func TestInAndBack(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 and not root: namespaces need root")
		}
		t.Skip("needs root (unshare of a network namespace)")
	}
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	var made netns.NsHandle
	if err := Run(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		made, err = netns.Get()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer made.Close()
	if made.Equal(here) {
		t.Fatal("unshare inside Run did not make a new namespace")
	}
	var inside netns.NsHandle
	if err := In(made, func() error { var err error; inside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(made) {
		t.Fatal("In did not run fn in the namespace it was given")
	}
	// Many goroutines later, none runs in the made namespace: every
	// thread Run and In used went back.
	for range 50 {
		if err := Run(func() error {
			cur, err := netns.Get()
			if err != nil {
				return err
			}
			defer cur.Close()
			if !cur.Equal(here) {
				return errors.New("a thread was left in another namespace")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := InPath("/nonexistent/ns", func() error { return nil }); err == nil {
		t.Fatal("InPath of a path that does not exist: no error")
	}
}
