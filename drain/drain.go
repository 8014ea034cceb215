// Package drain tracks the HTTP handlers a server is running, so that its
// Close can refuse new requests and wait for the ones in flight — which
// net/http stops tracking once a connection is hijacked (a port-forward,
// a long stream) and so cannot wait for itself.
package drain

import (
	"net/http"
	"sync"
)

// Handlers counts running handlers. The zero value is ready.
type Handlers struct {
	mu      sync.Mutex
	closing bool
	running sync.WaitGroup
}

// Track wraps h: each request is counted while it runs; once Close has
// begun, new requests get 503 with refusal as the body.
func (d *Handlers) Track(h http.Handler, refusal string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		if d.closing {
			d.mu.Unlock()
			http.Error(w, refusal, http.StatusServiceUnavailable)
			return
		}
		d.running.Add(1)
		d.mu.Unlock()
		defer d.running.Done()
		h.ServeHTTP(w, r)
	})
}

// Close refuses requests from now on; Wait then waits for those running.
func (d *Handlers) Close() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
}

// Wait returns when every tracked handler has returned.
func (d *Handlers) Wait() { d.running.Wait() }
