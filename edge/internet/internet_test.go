package internet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

var (
	pool   = netip.MustParsePrefix("198.51.100.0/24")
	webIP  = netip.MustParseAddr("203.0.113.10")
	userIP = netip.MustParseAddr("203.0.113.20")
)

// newWeb is an internet with a web server that names its client, and a
// client host whose stack the proxy dials from.
func newWeb(t *testing.T) (*Internet, http.Handler) {
	n := New(pool)
	t.Cleanup(n.Close)
	web, err := n.AddHost(webIP)
	if err != nil {
		t.Fatal(err)
	}
	l, err := web.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.RemoteAddr)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	user, err := n.AddHost(userIP)
	if err != nil {
		t.Fatal(err)
	}
	return n, Proxy(user)
}

// TestProxy: a request through the proxy comes from the internet's client
// host, for a plain request and through a CONNECT tunnel.
func TestProxy(t *testing.T) {
	_, h := newWeb(t)
	p := httptest.NewServer(h)
	defer p.Close()
	pu, _ := url.Parse(p.URL)
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := hc.Get("http://" + webIP.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "hello "+userIP.String()+":") {
		t.Fatalf("through the proxy the server saw %q; want the internet client %v", b, userIP)
	}

	// CONNECT: a raw tunnel to the web server's port.
	c, err := net.Dial("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s:80 HTTP/1.1\r\nHost: %s:80\r\n\r\n", webIP, webIP)
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "200") {
		t.Fatalf("CONNECT answered %q", status)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n" && line != ""; line, _ = br.ReadString('\n') {
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", webIP)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "hello "+userIP.String()) {
		t.Fatalf("through the tunnel: %q", rest)
	}

	// A request that is not a proxy request says how to use it.
	r, err := http.Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "curl -x") {
		t.Fatalf("a plain request got %d %q", r.StatusCode, b)
	}
}

// TestRouting: packets for the Elastic IP pool go to a live edge port, and
// none to a closed one; a public host outside the pool is refused.
func TestRouting(t *testing.T) {
	n, _ := newWeb(t)
	if _, err := n.AddHost(netip.MustParseAddr("198.51.100.9")); err == nil {
		t.Fatal("a public host inside the Elastic IP pool was accepted")
	}
	a, b := n.Attach(), n.Attach()
	b.Close()
	web, err := n.AddHost(netip.MustParseAddr("203.0.113.30"))
	if err != nil {
		t.Fatal(err)
	}
	// A connection attempt to an Elastic IP: its SYN reaches the live port.
	go func() {
		c, err := web.Dial("tcp", "198.51.100.7:80")
		if err == nil {
			c.Close()
		}
	}()
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	k, err := a.Read(bufs, sizes)
	if err != nil || k != 1 {
		t.Fatalf("the live edge port read %d packets, %v", k, err)
	}
	if _, err := b.Read(bufs, sizes); err != ErrClosed {
		t.Fatalf("a closed port reads %v, want ErrClosed", err)
	}
	a.Close()
}
