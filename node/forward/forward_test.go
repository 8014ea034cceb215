package forward_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openvpc/openvpc/node/forward"
)

// TestForwardRoundTrip: a client dials a forward, the server upgrades it
// and splices it to an echo service; bytes go both ways, a refusal comes
// back as the server's message, and once the client hangs up nothing the
// forward started is left running.
func TestForwardRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc(forward.Path, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("to") != "echo" {
			http.Error(w, "no such service", http.StatusNotFound)
			return
		}
		up, err := net.Dial("tcp", echo.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		forward.SpliceUpgraded(w, up)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	defer func() { srv.Close(); <-served }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	base := "http://" + ln.Addr().String()
	if _, err := forward.Dial(ctx, base, nil, "", url.Values{"to": {"nowhere"}}); err == nil || err.Error() != "no such service" {
		t.Fatalf("a refused forward: %v, want the server's message", err)
	}
	c, err := forward.Dial(ctx, base, nil, "", url.Values{"to": {"echo"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("openvpc")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "openvpc" {
		t.Fatalf("echo through the forward: %q, %v", got, err)
	}
	c.Close()
	// The server's splice ends with the client; Close then ends the rest.
}
