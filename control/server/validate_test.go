package server_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/server"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// TestDurationsAndCountsValidated: numbers from the wire are checked before
// they become durations or counts, so none wraps into something else.
func TestDurationsAndCountsValidated(t *testing.T) {
	s := startServer(t)
	admin := s.adminHTTP(t)
	inst, trust := s.instances(admin), s.trust(admin)
	invalid := func(what string, err error, wants ...string) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", what, err)
			return
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", what, err, w)
			}
		}
	}
	_, err := inst.WaitInstance(ctx(t), connect.NewRequest(&pb.WaitInstanceRequest{Ref: "i-0123456789abcdef", TimeoutMs: math.MaxInt64}))
	invalid("WaitInstance with timeout_ms 2^63-1", err, "at most")
	_, err = inst.WaitInstance(ctx(t), connect.NewRequest(&pb.WaitInstanceRequest{Ref: "i-0123456789abcdef", TimeoutMs: -5}))
	invalid("WaitInstance with timeout_ms -5", err)
	for _, ttl := range []int64{1<<55 + 3600, math.MaxInt64, -1, 8 * 24 * 3600} {
		_, err = trust.CreateJoinToken(ctx(t), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_HOST, TtlSeconds: ttl}))
		invalid(fmt.Sprint("CreateJoinToken with ttl_seconds ", ttl), err, "between 1s and 168h")
	}
	if r, err := trust.CreateJoinToken(ctx(t), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_HOST, TtlSeconds: 7 * 24 * 3600})); err != nil ||
		time.Until(r.Msg.ExpireTime.AsTime()) < 7*24*time.Hour-time.Minute {
		t.Errorf("CreateJoinToken for 7 days: %v, %v", r, err)
	}
	_, err = inst.PingInstance(ctx(t), connect.NewRequest(&pb.PingInstanceRequest{From: "web", To: "app", Count: math.MaxInt32}))
	invalid("PingInstance with count 2^31-1", err, "count")
	_, err = inst.PingInstance(ctx(t), connect.NewRequest(&pb.PingInstanceRequest{From: "web", To: "app", TimeoutMs: math.MaxInt64}))
	invalid("PingInstance with timeout_ms 2^63-1", err, "timeout")
	_, err = inst.ConnectInstance(ctx(t), connect.NewRequest(&pb.ConnectInstanceRequest{From: "web", To: "app:80", TimeoutMs: -1}))
	invalid("ConnectInstance with timeout_ms -1", err, "timeout")
	_, err = inst.ListEvents(ctx(t), connect.NewRequest(&pb.ListEventsRequest{Limit: -1}))
	invalid("ListEvents with limit -1", err, "limit")

	host := s.mapping(s.hostHTTP(t, "host-a", netip.MustParseAddr("127.0.1.1")))
	_, err = host.Ack(ctx(t), connect.NewRequest(&pb.AckRequest{HostId: "host-a", Revision: -1}))
	invalid("Ack of revision -1", err, "revision")
}

// TestMalformedStreamFrames: a stream whose frames do not parse is the
// caller's mistake (invalid_argument), never the server's (internal).
func TestMalformedStreamFrames(t *testing.T) {
	s := startServer(t)
	hc := s.hostHTTP(t, "host-a", netip.MustParseAddr("127.0.1.1"))
	frame := func(flags byte, payload []byte) []byte {
		b := []byte{flags, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	notProto := []byte{0xff, 0xff, 0xff, 0xff, 0xff}
	cases := []struct {
		name, proc string
		body       []byte
	}{
		{"AckStream, a frame that is not protobuf", openvpcv1connect.MappingServiceAckStreamProcedure, frame(0, notProto)},
		{"AckStream, a frame cut short", openvpcv1connect.MappingServiceAckStreamProcedure, frame(0, []byte{0x08, 0x01})[:5]},
		{"AckStream, a compressed frame without compression", openvpcv1connect.MappingServiceAckStreamProcedure, frame(1, []byte{0x08, 0x01})},
		{"AckStream, a valid frame then garbage", openvpcv1connect.MappingServiceAckStreamProcedure,
			append(frame(0, []byte{0x0a, 0x06, 'h', 'o', 's', 't', '-', 'a', 0x10, 0x01}), 0x00, 0x01)},
		{"Subscribe, a frame that is not protobuf", openvpcv1connect.MappingServiceSubscribeProcedure, frame(0, notProto)},
		{"Subscribe, a frame cut short", openvpcv1connect.MappingServiceSubscribeProcedure, []byte{0, 0, 0, 0, 9, 1}},
	}
	// A unary call in gRPC framing, its frame cut short.
	for _, ct := range []string{"application/grpc", "application/grpc-web+proto"} {
		req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, s.URL()+openvpcv1connect.MappingServiceAckProcedure, bytes.NewReader([]byte{0, 0, 0, 0, 9, 1}))
		req.Header.Set("Content-Type", ct)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status")
		if status != "3" {
			t.Errorf("unary Ack in %s, cut short: grpc-status %q (%s), want 3 (invalid argument)", ct, status,
				resp.Trailer.Get("Grpc-Message")+resp.Header.Get("Grpc-Message"))
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, s.URL()+c.proc, bytes.NewReader(c.body))
			req.Header.Set("Content-Type", "application/connect+proto")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			// The end-of-stream frame is the last one: flags 0x02, JSON.
			var end struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			for len(b) >= 5 {
				n := binary.BigEndian.Uint32(b[1:5])
				if int(n) > len(b)-5 {
					break
				}
				if b[0]&0x02 != 0 {
					_ = json.Unmarshal(b[5:5+n], &end)
				}
				b = b[5+n:]
			}
			if end.Error == nil || end.Error.Code != connect.CodeInvalidArgument.String() {
				t.Errorf("status %d, end of stream %+v, want invalid_argument", resp.StatusCode, end.Error)
			}
		})
	}
}

// TestCertTTLValidated: a certificate lifetime that is negative, too short
// to renew or absurdly long is refused at start, naming the flag.
func TestCertTTLValidated(t *testing.T) {
	for _, ttl := range []time.Duration{-time.Hour, time.Second, 10 * 8760 * time.Hour} {
		cfg := server.DefaultConfig()
		cfg.Trust.CertTTL = ttl
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--cert-ttl") {
			t.Errorf("--cert-ttl %v: %v, want a refusal naming --cert-ttl", ttl, err)
		}
	}
	for _, ttl := range []time.Duration{0, 3 * time.Second, 24 * time.Hour} {
		cfg := server.DefaultConfig()
		cfg.Trust.CertTTL = ttl
		if err := cfg.Validate(); err != nil {
			t.Errorf("--cert-ttl %v: %v, want it accepted", ttl, err)
		}
	}
}
