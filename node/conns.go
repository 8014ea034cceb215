package node

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// conns tracks the connections a node's own HTTP transports dial, so that
// Run can close them all when it ends. Closing idle connections is not
// enough: a stream canceled a moment ago still holds its connection until
// the transport's goroutines clean up, and each connection keeps reader
// goroutines on both ends.
type conns struct {
	mu  sync.Mutex
	all map[*trackedConn]struct{}
}

// wrap returns a copy of tr whose connections c tracks.
func (c *conns) wrap(tr *http.Transport) *http.Transport {
	tr = tr.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, c: c}
		c.mu.Lock()
		if c.all == nil {
			c.all = map[*trackedConn]struct{}{}
		}
		c.all[tc] = struct{}{}
		c.mu.Unlock()
		return tc, nil
	}
	return tr
}

// closeAll closes every connection still open.
func (c *conns) closeAll() {
	c.mu.Lock()
	open := make([]*trackedConn, 0, len(c.all))
	for tc := range c.all {
		open = append(open, tc)
	}
	c.mu.Unlock()
	for _, tc := range open {
		tc.Close()
	}
}

type trackedConn struct {
	net.Conn
	c    *conns
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.mu.Lock()
		delete(t.c.all, t)
		t.c.mu.Unlock()
	})
	return t.Conn.Close()
}
