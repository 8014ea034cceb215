package localcloud

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/openvpc/openvpc/edge/internet"
)

// The cloud's internet: documentation addresses, in this process only.
var (
	// WebAddr is the internet's web server (port 80): it answers who
	// connected, so a client sees the address it came from.
	WebAddr = netip.MustParseAddr("203.0.113.10")
	// ClientAddr is the internet's client, whose connections the proxy
	// makes.
	ClientAddr = netip.MustParseAddr("203.0.113.20")
)

// Internet is the simulated internet of a cloud with edges: a web server,
// a client reachable through an HTTP proxy on loopback, and the edges'
// outside ports.
type Internet struct {
	*internet.Internet
	web, proxy *http.Server
	serving    sync.WaitGroup
}

// startInternet starts an internet in which pools (the Elastic IP pools)
// are reached through the edges, with its proxy on proxyAddr ("" for none).
func startInternet(pools []netip.Prefix, proxyAddr string) (_ *Internet, err error) {
	u := &Internet{Internet: internet.New(pools...)}
	defer func() {
		if err != nil {
			u.close()
		}
	}()
	web, err := u.AddHost(WebAddr)
	if err != nil {
		return nil, err
	}
	l, err := web.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		return nil, err
	}
	u.web = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from the internet (%s). You came from %s.\n", WebAddr, r.RemoteAddr)
	})}
	u.serve(u.web, l)
	client, err := u.AddHost(ClientAddr)
	if err != nil {
		return nil, err
	}
	if proxyAddr != "" {
		pl, err := net.Listen("tcp", proxyAddr)
		if err != nil {
			return nil, fmt.Errorf("internet proxy on %s: %w (pass --internet-proxy with a free address, or '' for none)", proxyAddr, err)
		}
		u.proxy = &http.Server{Addr: pl.Addr().String(), Handler: internet.Proxy(client), ReadHeaderTimeout: 10 * time.Second}
		u.serve(u.proxy, pl)
	}
	return u, nil
}

// ProxyAddr is the address of the internet's HTTP proxy ("" for none).
func (u *Internet) ProxyAddr() string {
	if u.proxy == nil {
		return ""
	}
	return u.proxy.Addr
}

// serve serves s on l until close.
func (u *Internet) serve(s *http.Server, l net.Listener) {
	u.serving.Add(1)
	go func() {
		defer u.serving.Done()
		_ = s.Serve(l)
	}()
}

func (u *Internet) close() {
	for _, s := range []*http.Server{u.proxy, u.web} {
		if s != nil {
			s.Close()
		}
	}
	u.serving.Wait()
	u.Internet.Close()
}
