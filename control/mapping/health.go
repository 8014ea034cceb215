package mapping

import (
	"context"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// watchHealth marks edges unhealthy when they stop reporting in, and
// healthy again when they do. Hosts choose among healthy edges only, so
// an edge that dies stops getting flows within about one health window (Config.HealthWindow).
// The verdict is written to the store: every server and, through their
// caches, every host sees the same one. Servers that judge at the same
// time write the same value.
func (s *Service) watchHealth(ctx context.Context) {
	window := s.healthWindow
	t := time.NewTicker(window / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for id, healthy := range s.healthChanges(window) {
			if err := s.store.SetHostHealth(ctx, id, healthy); err != nil && ctx.Err() == nil {
				s.log.Warn("mapping: could not record edge health", "edge", id, "healthy", healthy, "err", err)
			}
		}
	}
}

// healthChanges lists the edges whose recorded health differs from what
// their last report says.
func (s *Service) healthChanges(window time.Duration) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for id, h := range s.w.hosts {
		if h.Role != pb.HostRole_HOST_ROLE_EDGE {
			continue
		}
		seen := h.LastSeen.AsTime()
		if a := s.w.acks[id]; a.Seen.After(seen) {
			seen = a.Seen
		}
		if healthy := time.Since(seen) < window; healthy == h.Unhealthy {
			out[id] = healthy
		}
	}
	return out
}
