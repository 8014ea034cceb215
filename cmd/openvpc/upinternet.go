package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/internet"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

// The test internet of `openvpc up`: documentation addresses, in this
// process only.
var (
	upWebAddr    = netip.MustParseAddr("203.0.113.10")
	upClientAddr = netip.MustParseAddr("203.0.113.20")
)

// upInternet is the internet side of `openvpc up`: a simulated internet
// with a web server and a client host, the client reachable through an
// HTTP proxy on loopback, and the edges joining it to the cloud.
type upInternet struct {
	inet  *internet.Internet
	proxy *http.Server
	wires []underlay.Conn
}

// startInternet starts it and its edges (edge-1 … on 127.0.1.251 …); they
// run until ctx ends. Errors of running edges go to errs.
func startInternet(ctx context.Context, s *server.Server, log *slog.Logger, edges int, port uint16, proxyAddr string, wg *sync.WaitGroup, errs chan<- error) (*upInternet, error) {
	u := &upInternet{inet: internet.New(s.Store.EIPPools()...)}
	web, err := u.inet.AddHost(upWebAddr)
	if err != nil {
		return nil, err
	}
	l, err := web.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		return nil, err
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello from the internet (%s). You came from %s.\n", upWebAddr, r.RemoteAddr)
		}))
	}()
	client, err := u.inet.AddHost(upClientAddr)
	if err != nil {
		return nil, err
	}
	if proxyAddr != "" {
		pl, err := net.Listen("tcp", proxyAddr)
		if err != nil {
			return nil, fmt.Errorf("internet proxy on %s: %w (pass --internet-proxy with a free address, or '' for none)", proxyAddr, err)
		}
		u.proxy = &http.Server{Handler: internet.Proxy(client), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = u.proxy.Serve(pl) }()
	}
	for i := 1; i <= edges; i++ {
		addr := netip.AddrFrom4([4]byte{127, 0, 1, byte(250 + i)})
		wire, err := underlay.ListenPort(addr, port)
		if err != nil {
			u.close()
			return nil, fmt.Errorf("underlay of edge-%d on %s:%d: %w", i, addr, port, err)
		}
		u.wires = append(u.wires, wire)
		id := fmt.Sprintf("edge-%d", i)
		creds, err := s.Trust.IssueAgent(ctx, id, pki.RoleEdge, addr)
		if err != nil {
			u.close()
			return nil, err
		}
		n, err := edge.NewNode(node.Config{Server: s.URL(), HostID: id, Creds: creds, Logger: log, API: "127.0.0.1:0"},
			edge.Config{Underlay: addr, Wire: wire, WirePort: port, Outside: u.inet.Attach()})
		if err != nil {
			u.close()
			return nil, err
		}
		if err := s.Register(n.Collector()); err != nil {
			u.close()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	return u, nil
}

func (u *upInternet) close() {
	if u.proxy != nil {
		u.proxy.Close()
	}
	for _, w := range u.wires {
		w.Close()
	}
	u.inet.Close()
}

// internetHelp is the quickstart's internet part.
func internetHelp(edges int, proxy string) string {
	if edges == 0 {
		return ""
	}
	s := fmt.Sprintf(`
The internet (simulated, in this process) has a web server at %s, reached
through %d edge(s). Give web an Elastic IP and a way out:
  openvpc igw create --name red-igw
  openvpc igw attach red-igw --vpc red
  openvpc route create --vpc red --dest 0.0.0.0/0 --target red-igw
  openvpc eip allocate --name web-ip
  openvpc eip associate web-ip --instance web
  openvpc instance forward web --listen 127.0.0.1:8080 --to %s:80 &
  curl http://127.0.0.1:8080/        # the internet sees web's Elastic IP
`, upWebAddr, edges, upWebAddr)
	if proxy != "" {
		s += fmt.Sprintf(`The proxy %s connects from a client on the internet (%s): with a
server in web (a tun instance: openvpc instance exec web -- python3 -m http.server 80),
  curl -x http://%s http://<web's Elastic IP>/
`, proxy, upClientAddr, proxy)
	}
	return s
}
