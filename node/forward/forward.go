// Package forward is the port-forward protocol: an HTTP/1.1 request
// upgraded into a TCP stream from inside an instance. The CLI opens one at
// a server, the server relays it to the node agent running the instance;
// both ends import this small package, so neither imports the other.
package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Path is where servers and node agents upgrade an HTTP/1.1 connection
// into a TCP stream from inside one of their instances (a port-forward):
// GET Path?QUERY with Upgrade: Protocol. A server's query names the
// instance (instance=REF&to=ADDR:PORT); an agent's names its address
// (vni=V&ip=INSTANCE&to=ADDR:PORT).
const (
	Path     = "/openvpc/forward"
	Protocol = "openvpc-forward"
)

// Dial opens a forward at base, a server's URL (the CLI, with an
// admin token) or an agent's (a server), over TLS with cfg when base is
// https, and returns the stream once upgraded.
func Dial(ctx context.Context, base string, cfg *tls.Config, token string, q url.Values) (net.Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	if u.Scheme == "https" {
		if cfg == nil {
			return nil, fmt.Errorf("%s needs TLS", base)
		}
		conn, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", u.Host)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	return upgrade(conn, u.Host, q, token)
}

func upgrade(conn net.Conn, host string, q url.Values, token string) (net.Conn, error) {
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprintf(conn, "GET %s?%s HTTP/1.1\r\nHost: %s\r\n%sConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", Path, q.Encode(), host, auth, Protocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		why, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		conn.Close()
		if msg := strings.TrimSpace(string(why)); msg != "" {
			return nil, errors.New(msg)
		}
		return nil, errors.New(resp.Status)
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response reader already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Splice copies both ways between a client (whose buffered bytes are in
// br) and an upstream connection until either side ends, then closes both
// so that the other copy ends too: Splice returns with no copy running.
func Splice(client net.Conn, br io.Reader, upstream net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, br); done <- struct{}{} }()
	go func() { io.Copy(client, upstream); done <- struct{}{} }()
	<-done
	client.Close()
	upstream.Close()
	<-done
}

// SpliceUpgraded answers a forward request with 101 Switching Protocols and
// then carries the client's connection to upstream until either ends.
func SpliceUpgraded(w http.ResponseWriter, upstream net.Conn) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "forwarding needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", Protocol)
	if err := rw.Flush(); err != nil {
		return
	}
	Splice(conn, rw.Reader, upstream)
}
