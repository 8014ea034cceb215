package cli

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestMarshalJSON: numbers are numbers, enums the tables' words, every
// field present, timestamps RFC 3339, nested messages and lists walked.
func TestMarshalJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	check := func(t *testing.T, got []byte, want map[string]any) {
		t.Helper()
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("not JSON (%v): %s", err, got)
		}
		for k, w := range want {
			if !reflect.DeepEqual(v[k], w) {
				t.Errorf("%s = %#v, want %#v (in %s)", k, v[k], w, got)
			}
		}
	}
	t.Run("host", func(t *testing.T) {
		b, err := marshalJSON(&pb.Host{Id: "edge-1", Role: pb.HostRole_HOST_ROLE_EDGE, Instances: 3, AckedRevision: 1 << 40, LastSeen: timestamppb.New(at)})
		if err != nil {
			t.Fatal(err)
		}
		check(t, b, map[string]any{"id": "edge-1", "role": "edge", "instances": float64(3), "ackedRevision": float64(1 << 40),
			"lag": float64(0), "reachable": false, "lastSeen": "2026-12-01T10:00:00Z"})
	})
	t.Run("route table", func(t *testing.T) {
		b, err := marshalJSON(&pb.RouteTable{Id: "rtb-1", Routes: []*pb.Route{{DestinationCidr: "10.0.0.0/16", Target: "local", State: pb.RouteState_ROUTE_STATE_BLACKHOLE}}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, b, map[string]any{"routes": []any{map[string]any{"destinationCidr": "10.0.0.0/16", "target": "local", "state": "blackhole",
			"origin": "unspecified", "vgwId": "", "inactiveReason": "", "destinationPrefixListId": ""}}, "createTime": nil, "propagatingVgws": []any{}})
	})
	t.Run("enum words", func(t *testing.T) {
		for _, c := range []struct{ got, want string }{
			{enumWord(pb.PeeringState(0).Descriptor(), 1), "pending-acceptance"},
			{enumWord(pb.InstanceState(0).Descriptor(), 2), "running"},
			{enumWord(pb.HostRole(0).Descriptor(), 0), "unspecified"},
			{enumWord(pb.HostRole(0).Descriptor(), 99), "99"},
		} {
			if c.got != c.want {
				t.Errorf("enum word %q, want %q", c.got, c.want)
			}
		}
	})
}
