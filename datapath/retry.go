package datapath

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// Retry is what a read loop does with the errors of its socket or port:
// a closed one ends the loop, anything else is transient — the loop backs
// off (1 ms, doubling with each failure in a row, up to a second) and
// reads again, as wireguard-go's receive routines do, so that a host
// never silently stops receiving. The zero Retry is ready; one per loop.
type Retry struct {
	fails int
}

// Again reports whether the loop should read again after err, having
// waited: false when the socket or port is closed (the loop's owner closed
// it to stop the loop).
func (r *Retry) Again(err error) bool {
	if Closed(err) {
		return false
	}
	time.Sleep(min(time.Millisecond<<min(r.fails, 10), time.Second))
	r.fails++
	return true
}

// Reset records a successful read: the next error waits the least again.
func (r *Retry) Reset() { r.fails = 0 }

// Closed reports whether err says a socket, file or port was closed.
func Closed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF)
}
