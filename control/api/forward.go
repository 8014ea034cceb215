package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/openvpc/openvpc/node/forward"
)

// Forward relays a port-forward (`openvpc instance forward`): the client
// asks the server, which checked its admin token, and the server asks the
// instance's agent, which only servers may call.
//
//	GET forward.Path?instance=REF&to=ADDR:PORT, Upgrade: forward.Protocol
func (h *Instances) Forward(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	q := r.URL.Query()
	a, err := h.actAs(ctx, q.Get("instance"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	host, err := h.Store.GetHost(ctx, a.inst.HostId)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	up, err := forward.Dial(ctx, host.AgentUrl, h.Agents.AgentTLS(host.Id), "", url.Values{
		"vni": {strconv.FormatUint(uint64(a.vni), 10)}, "ip": {a.inst.PrivateIp}, "to": {q.Get("to")},
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	// Hijacked, the connection is no longer the HTTP server's to close:
	// the forward ends with the request's context, when the server stops.
	defer context.AfterFunc(r.Context(), func() { up.Close() })()
	forward.SpliceUpgraded(w, up)
}
