package datapath

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

func TestRetry(t *testing.T) {
	var r Retry
	if r.Again(fmt.Errorf("read: %w", net.ErrClosed)) {
		t.Error("a closed socket is read again")
	}
	if !r.Again(syscall.ENOBUFS) || !r.Again(errors.New("recvmmsg: interrupted")) {
		t.Error("a transient error ends the loop")
	}
	if r.fails != 2 {
		t.Errorf("%d failures in a row counted, want 2", r.fails)
	}
	r.Reset()
	if r.fails != 0 {
		t.Error("Reset kept the count")
	}
}
