package services

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds of the forwarder's cache.
const (
	maxCached   = 10000          // entries per VPC's stack; a full cache sweeps the expired, then starts over
	maxCacheTTL = 24 * time.Hour // no answer is kept longer, whatever its TTL says
	forwardWait = 2 * time.Second
)

// forwarder sends the names the resolver does not answer itself to the
// upstream resolver, and keeps each answer for as long as its TTLs say
// (a negative answer for its SOA's minimum), counting down the TTLs it
// hands out as an upstream cache does.
type forwarder struct {
	mu    sync.Mutex
	cache map[cacheKey]cached
	now   func() time.Time

	// Asked counts the queries sent upstream (a cache miss each).
	asked uint64
}

type cacheKey struct {
	name          string // lower case
	qtype, qclass uint16
}

type cached struct {
	msg      *dns.Msg
	at, till time.Time
}

func newForwarder() *forwarder {
	return &forwarder{cache: map[cacheKey]cached{}, now: time.Now}
}

// forward answers req through upstream (ip:port), from the cache while an
// earlier answer lives. A failed exchange is SERVFAIL, never cached.
func (f *forwarder) forward(req *dns.Msg, upstream string) *dns.Msg {
	q := req.Question[0]
	key := cacheKey{toLower(q.Name), q.Qtype, q.Qclass}
	if m := f.lookup(key, req); m != nil {
		return m
	}
	out := new(dns.Msg)
	out.SetQuestion(q.Name, q.Qtype)
	out.Question[0].Qclass = q.Qclass
	out.RecursionDesired = true
	out.SetEdns0(dns.DefaultMsgSize, false)
	f.mu.Lock()
	f.asked++
	f.mu.Unlock()
	c := &dns.Client{Net: "udp", Timeout: forwardWait}
	resp, _, err := c.Exchange(out, upstream)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.Exchange(out, upstream)
	}
	if err != nil || resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	resp.Extra = withoutOPT(resp.Extra)
	if ttl := cacheTTL(resp); ttl > 0 {
		f.store(key, resp, ttl)
	}
	return reply(req, resp, 0)
}

// lookup returns the cached answer to req, its TTLs counted down, or nil.
func (f *forwarder) lookup(key cacheKey, req *dns.Msg) *dns.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cache[key]
	if !ok {
		return nil
	}
	now := f.now()
	if !now.Before(c.till) {
		delete(f.cache, key)
		return nil
	}
	return reply(req, c.msg, uint32(now.Sub(c.at)/time.Second))
}

func (f *forwarder) store(key cacheKey, m *dns.Msg, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if len(f.cache) >= maxCached {
		for k, c := range f.cache {
			if !now.Before(c.till) {
				delete(f.cache, k)
			}
		}
		if len(f.cache) >= maxCached {
			clear(f.cache)
		}
	}
	f.cache[key] = cached{msg: m, at: now, till: now.Add(ttl)}
}

// Asked is how many queries went upstream.
func (f *forwarder) Asked() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// reply is resp as the answer to req, every TTL less age seconds.
func reply(req, resp *dns.Msg, age uint32) *dns.Msg {
	m := resp.Copy()
	m.Id, m.Question, m.RecursionDesired, m.RecursionAvailable = req.Id, req.Question, req.RecursionDesired, true
	m.Response, m.Authoritative = true, false
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			h.Ttl -= min(h.Ttl, age)
		}
	}
	return m
}

// cacheTTL is how long resp may be kept: its smallest TTL, or for a
// negative answer the SOA's (RFC 2308); 0 is not at all.
func cacheTTL(resp *dns.Msg) time.Duration {
	var ttl uint32
	first := true
	take := func(t uint32) {
		if first || t < ttl {
			ttl, first = t, false
		}
	}
	if len(resp.Answer) == 0 {
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				take(min(soa.Hdr.Ttl, soa.Minttl))
			}
		}
	} else {
		for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
			for _, rr := range sec {
				take(rr.Header().Ttl)
			}
		}
	}
	if first {
		return 0
	}
	return min(time.Duration(ttl)*time.Second, maxCacheTTL)
}

func withoutOPT(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
