package services

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openvpc/openvpc/model"
)

// The IMDSv2 headers and the bounds of a token's lifetime, AWS's.
const (
	headerTTL     = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	headerToken   = "X-Aws-Ec2-Metadata-Token"
	maxTokenTTL   = 21600
	tokenPath     = "/latest/api/token"
	metadataPath  = "/latest/meta-data/"
	userDataPath  = "/latest/user-data"
	maxTokenCount = 4096 // per VPC: beyond it, expired tokens are swept first
)

// metadata is the instance metadata service of one VPC. It answers for
// the instance the request came from, by its source address on this stack
// — which the data plane let through only after the source check, so it
// is the instance's own — never by anything the request says.
type metadata struct {
	s *Stack

	mu     sync.Mutex
	tokens map[string]token
}

// token is an IMDSv2 session: valid for the instance that asked for it.
type token struct {
	ip      netip.Addr
	expires time.Time
}

func newMetadata(s *Stack) *metadata { return &metadata{s: s, tokens: map[string]token{}} }

func (md *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "", http.StatusForbidden)
		return
	}
	id, ok := md.s.cfg.Identity(ap.Addr().Unmap())
	if !ok {
		http.Error(w, "", http.StatusForbidden)
		return
	}
	if r.URL.Path == tokenPath {
		md.putToken(w, r, id.IP)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get(headerToken); tok != "" || md.s.cfg.RequireToken || id.RequireToken {
		if !md.valid(tok, id.IP) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
	}
	if r.URL.Path == userDataPath { // as AWS: raw bytes, 404 when there are none
		if id.UserData == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(id.UserData)
		return
	}
	body, ok := md.s.path(&id, r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, body)
}

// putToken answers PUT /latest/api/token with a new session token.
func (md *metadata) putToken(w http.ResponseWriter, r *http.Request, ip netip.Addr) {
	if r.Method != http.MethodPut {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" { // as AWS: a proxied request gets no token
		http.Error(w, "", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(headerTTL))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	md.mu.Lock()
	if len(md.tokens) >= maxTokenCount {
		for k, t := range md.tokens {
			if now.After(t.expires) {
				delete(md.tokens, k)
			}
		}
	}
	if len(md.tokens) >= maxTokenCount {
		md.mu.Unlock()
		http.Error(w, "", http.StatusServiceUnavailable)
		return
	}
	md.tokens[tok] = token{ip: ip, expires: now.Add(time.Duration(ttl) * time.Second)}
	md.mu.Unlock()
	// The token leaves with the hop limit as its TTL. The connection keeps
	// that TTL, so it ends with this response: later requests come on a new
	// connection with the default TTL.
	if !setTTL(r.Context(), md.s.cfg.TokenHopLimit) {
		md.s.cfg.Log.Warn("metadata: cannot set the token's hop limit; refusing the token")
		md.mu.Lock()
		delete(md.tokens, tok)
		md.mu.Unlock()
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Connection", "close")
	w.Header().Set(headerTTL, strconv.Itoa(ttl))
	fmt.Fprint(w, tok)
}

// valid reports whether tok is a live token of the instance at ip.
func (md *metadata) valid(tok string, ip netip.Addr) bool {
	md.mu.Lock()
	defer md.mu.Unlock()
	t, ok := md.tokens[tok]
	if ok && time.Now().After(t.expires) {
		delete(md.tokens, tok)
		return false
	}
	return ok && t.ip == ip
}

// path is the metadata at p for the instance id: a value, or a listing
// (one entry a line, directories ending in /).
func (s *Stack) path(id *Identity, p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, metadataPath)
	if !ok {
		switch p {
		case "/", "/latest", "/latest/":
			if id.UserData != nil {
				return "meta-data/\nuser-data", true
			}
			return "meta-data/", true
		case "/latest/meta-data":
			return s.path(id, metadataPath)
		}
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	mac := formatMAC(id.MAC)
	name := PrivateName(id.IP, s.cfg.Region)
	iface := "network/interfaces/macs/" + mac
	values := map[string]string{
		"":                                "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/",
		"instance-id":                     id.InstanceID,
		"local-ipv4":                      id.IP.String(),
		"mac":                             mac,
		"hostname":                        name,
		"local-hostname":                  name,
		"placement":                       "region",
		"placement/region":                s.cfg.Region,
		"network":                         "interfaces/",
		"network/interfaces":              "macs/",
		"network/interfaces/macs":         mac + "/",
		iface:                             "device-number\ninterface-id\nlocal-hostname\nlocal-ipv4s\nmac\nsecurity-group-ids\nsubnet-id\nsubnet-ipv4-cidr-block\nvpc-id\nvpc-ipv4-cidr-block",
		iface + "/device-number":          "0",
		iface + "/interface-id":           model.FormatID(model.KindENI, id.ENI),
		iface + "/local-hostname":         name,
		iface + "/local-ipv4s":            id.IP.String(),
		iface + "/mac":                    mac,
		iface + "/security-group-ids":     groupList(id.Groups),
		iface + "/subnet-id":              model.FormatID(model.KindSubnet, id.SubnetID),
		iface + "/subnet-ipv4-cidr-block": id.SubnetCIDR.String(),
		iface + "/vpc-id":                 model.FormatID(model.KindVPC, id.VPCID),
		iface + "/vpc-ipv4-cidr-block":    id.VPCCIDR.String(),
	}
	if id.PublicIP.IsValid() { // as AWS: listed only when the instance has one
		values[""] += "\npublic-ipv4"
		values["public-ipv4"] = id.PublicIP.String()
		values[iface] += "\npublic-ipv4s"
		values[iface+"/public-ipv4s"] = id.PublicIP.String()
	}
	v, ok := values[rest]
	return v, ok
}

func groupList(gs []uint64) string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = model.FormatID(model.KindSecurityGroup, g)
	}
	return strings.Join(out, "\n")
}

func formatMAC(m [6]byte) string { return net.HardwareAddr(m[:]).String() }
