package localcloud

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// The simulated internet's names, answered by its resolver: the web
// server's, under the reserved test domain (RFC 2606), so no real name
// is shadowed and nothing is ever asked of a real resolver.
var internetNames = map[string]netip.Addr{
	"example.test.":        WebAddr,
	"www.example.test.":    WebAddr,
	"client.example.test.": ClientAddr,
}

// internetTTL is the TTL of the internet's answers.
const internetTTL = 300

// internetDNS is the simulated internet's resolver: a small DNS server on
// loopback (UDP and TCP on one port) that the server's DNS upstream
// names, so instances of `openvpc up` resolve external names. It knows
// internetNames and answers every other name NXDOMAIN; it forwards nothing.
type internetDNS struct {
	addr    string // ip:port
	servers []*dns.Server
	wg      sync.WaitGroup
}

// startInternetDNS listens on addr (host:port on loopback; port 0 picks
// one, the same for UDP and TCP).
func startInternetDNS(addr string) (*internetDNS, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("internet resolver %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("internet resolver %q: the address must be a loopback IP", addr)
	}
	var pc net.PacketConn
	var l net.Listener
	for range 10 { // port 0: a UDP port whose TCP twin is free too
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(host, port)); err != nil {
			return nil, fmt.Errorf("internet resolver on UDP %s: %w", addr, err)
		}
		at := pc.LocalAddr().String()
		if l, err = net.Listen("tcp", at); err == nil {
			break
		}
		pc.Close()
		if port != "0" {
			return nil, fmt.Errorf("internet resolver on TCP %s: %w", at, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("internet resolver on %s: %w", addr, err)
	}
	d := &internetDNS{addr: pc.LocalAddr().String()}
	h := dns.HandlerFunc(answerInternet)
	d.servers = []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}}
	for _, s := range d.servers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = s.ActivateAndServe()
		}()
	}
	return d, nil
}

// answerInternet answers a query for the internet's names.
func answerInternet(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	switch {
	case req.Opcode != dns.OpcodeQuery || len(req.Question) != 1:
		m.SetRcode(req, dns.RcodeFormatError)
	default:
		q := req.Question[0]
		ip, ok := internetNames[strings.ToLower(q.Name)]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: internetTTL}, A: ip.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// Addr is where the resolver listens (ip:port).
func (d *internetDNS) Addr() string { return d.addr }

func (d *internetDNS) close() {
	for _, s := range d.servers {
		if s.PacketConn != nil {
			s.PacketConn.Close()
		}
		if s.Listener != nil {
			s.Listener.Close()
		}
	}
	d.wg.Wait()
}
