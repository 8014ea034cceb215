package dataplane

import (
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/packet"
)

// withResolver gives red's ENI 1 the VPC resolver address and red a
// services port.
func withResolver(t *testing.T, f *fixture) *chanPort {
	t.Helper()
	f.enis[1].Resolver = a("10.0.0.2")
	f.p.Attach(f.enis[1])
	port := newChanPort()
	f.p.AttachServices(red, port)
	return port
}

func TestHostServicesStep(t *testing.T) {
	f := newFixture(t)
	port := withResolver(t, f)
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	for _, tc := range []struct {
		name      string
		eni       uint64
		src, dst  string
		dport     uint16
		want      datapath.Verdict
		toService bool
	}{
		{"resolver at base+2", 1, "10.0.1.4", "10.0.0.2", 53, datapath.ToHostService, true},
		{"resolver at 169.254.169.253", 1, "10.0.1.4", "169.254.169.253", 53, datapath.ToHostService, true},
		{"spoofed source never reaches the resolver", 1, "10.0.1.9", "10.0.0.2", 53, datapath.SpoofedSource, false},
		{"metadata is TCP: UDP 80 is no service", 1, "10.0.1.4", "169.254.169.254", 80, datapath.NoRoute, false},
		{"another port at base+2 is no service", 1, "10.0.1.4", "10.0.0.2", 54, datapath.NoMapping, false},
		{"a VPC with no services port", 5, "10.1.1.5", "169.254.169.253", 53, datapath.NoPort, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := udpPacket(buf, tc.src, tc.dst, 32, 64, false)
			packet.UDP(buf[packet.Headroom+packet.IPv4MinSize:]).SetDstPort(tc.dport)
			var r Result
			f.p.Egress(f.t.Load(), f.enis[tc.eni], buf, n, scratch, &r)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
			if tc.toService != (r.Service == port) {
				t.Fatalf("service port %v, want it: %v", r.Service, tc.toService)
			}
			if tc.toService && packet.IPv4(r.Packet).Dst() != a(tc.dst) {
				t.Fatalf("packet for the service is to %v", packet.IPv4(r.Packet).Dst())
			}
		})
	}
}

// The trace shows the step after the source check, and a spoofed source
// stops before it.
func TestHostServicesTrace(t *testing.T) {
	f := newFixture(t)
	withResolver(t, f)
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.4", "10.0.0.2", 32, 64, false)
	steps, r := f.p.TraceEgress(f.enis[1], buf[packet.Headroom:packet.Headroom+n])
	if r.Verdict != datapath.ToHostService || len(steps) != 3 || steps[1].Name != "source check" || steps[2].Name != "host services" || !steps[2].Pass {
		t.Fatalf("trace %+v, verdict %v", steps, r.Verdict)
	}
	n = udpPacket(buf, "10.0.1.9", "10.0.0.2", 32, 64, false)
	steps, _ = f.p.TraceEgress(f.enis[1], buf[packet.Headroom:packet.Headroom+n])
	for _, s := range steps {
		if s.Name == "host services" {
			t.Fatalf("a spoofed packet reached the host services step: %+v", steps)
		}
	}
}

// What the services port sends goes only to local instances of its VPC.
func TestFromServices(t *testing.T) {
	f := newFixture(t)
	withResolver(t, f)
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		dst   string
		want  datapath.Verdict
		toENI uint64
	}{
		{"10.0.1.4", datapath.Delivered, 1},
		{"10.0.1.5", datapath.NotLocal, 0}, // red, on another host
		{"10.1.1.5", datapath.NotLocal, 0}, // local, but in yellow: not this stack's VPC
		{"10.0.1.8", datapath.NoPort, 0},   // local, not attached
	} {
		n := udpPacket(buf, "10.0.0.2", tc.dst, 32, 64, false)
		var r Result
		f.p.fromServices(f.t.Load(), red, packet.IPv4(buf[packet.Headroom:packet.Headroom+n]), &r)
		if r.Verdict != tc.want || tc.toENI != 0 && r.To.ENI != tc.toENI {
			t.Errorf("to %s: %v (to %+v), want %v", tc.dst, r.Verdict, r.To, tc.want)
		}
	}
}

func TestHostServicesNoAllocations(t *testing.T) {
	f := newFixture(t)
	withResolver(t, f)
	f.p.cfg.Events = func(datapath.Event) {}
	snap := f.t.Load()
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	var r Result
	for _, dst := range []string{"10.0.0.2", "169.254.169.253", "10.0.1.5"} {
		n := udpPacket(buf, "10.0.1.4", dst, 64, 64, false)
		if allocs := testing.AllocsPerRun(100, func() {
			udpPacket(buf, "10.0.1.4", dst, 64, 64, false)
			f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
		}); allocs != 0 {
			t.Errorf("egress to %s: %.1f allocations per packet", dst, allocs)
		}
	}
	n := udpPacket(buf, "10.0.0.2", "10.0.1.4", 64, 64, false)
	if allocs := testing.AllocsPerRun(100, func() {
		f.p.fromServices(snap, red, packet.IPv4(buf[packet.Headroom:packet.Headroom+n]), &r)
	}); allocs != 0 || r.Verdict != datapath.Delivered {
		t.Errorf("from services: %v, %.1f allocations per packet", r.Verdict, allocs)
	}
}

// An ENI gets ServiceLimit packets a second to the host services; the
// rest are service-limit, until the next second. A trace does not count.
func TestServiceLimit(t *testing.T) {
	f := newFixture(t)
	withResolver(t, f)
	f.p.SetServiceLimit(3)
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	send := func() datapath.Verdict {
		n := udpPacket(buf, "10.0.1.4", "10.0.0.2", 32, 64, false)
		var r Result
		f.p.Egress(f.t.Load(), f.enis[1], buf, n, scratch, &r)
		return r.Verdict
	}
	f.p.clock.Store(100)
	for i := range 3 {
		if v := send(); v != datapath.ToHostService {
			t.Fatalf("packet %d: %v", i, v)
		}
	}
	n := udpPacket(buf, "10.0.1.4", "10.0.0.2", 32, 64, false)
	if _, r := f.p.TraceEgress(f.enis[1], buf[packet.Headroom:packet.Headroom+n]); r.Verdict != datapath.ToHostService {
		t.Fatalf("a trace is limited or counted: %v", r.Verdict)
	}
	if v := send(); v != datapath.ServiceLimit {
		t.Fatalf("packet 4 in one second: %v, want service-limit", v)
	}
	// Other destinations are not limited.
	n = udpPacket(buf, "10.0.1.4", "10.0.1.5", 32, 64, false)
	var r Result
	if f.p.Egress(f.t.Load(), f.enis[1], buf, n, scratch, &r); r.Verdict != datapath.Forwarded {
		t.Fatalf("to a peer: %v", r.Verdict)
	}
	f.p.clock.Store(101)
	if v := send(); v != datapath.ToHostService {
		t.Fatalf("the next second: %v", v)
	}
}

// The services are no one else's: from the wire a packet for them is not
// for an ENI here, and from a peered VPC red's .2 is just an address of
// red's, which nobody has.
func TestHostServicesOnlyFromTheVPC(t *testing.T) {
	f := newFixture(t)
	red := withResolver(t, f)
	f.enis[5].Resolver = a("10.1.0.2")
	f.p.Attach(f.enis[5])
	yellowPort := newChanPort()
	f.p.AttachServices(yellow, yellowPort)
	buf := make([]byte, 2048)
	var r Result
	for _, dst := range []string{"10.0.0.2", "169.254.169.253", "169.254.169.254"} {
		n := udpPacket(buf, "10.0.1.5", dst, 32, 64, false)
		if f.p.Ingress(f.t.Load(), host2, wire0(buf, n), &r); r.Verdict != datapath.NotLocal {
			t.Errorf("from the wire to %s: %v, want not-local", dst, r.Verdict)
		}
	}
	n := udpPacket(buf, "10.1.1.5", "10.0.0.2", 32, 64, false)
	if f.p.Egress(f.t.Load(), f.enis[5], buf, n, make([]byte, ScratchSize), &r); r.Verdict != datapath.NoMapping || r.Service != nil {
		t.Errorf("yellow to red's resolver: %v (service %v), want no-mapping", r.Verdict, r.Service)
	}
	n = udpPacket(buf, "10.1.1.5", "169.254.169.253", 32, 64, false)
	if f.p.Egress(f.t.Load(), f.enis[5], buf, n, make([]byte, ScratchSize), &r); r.Service != yellowPort || r.Service == red {
		t.Errorf("yellow's 169.254.169.253 went to %v, want yellow's own stack", r.Service)
	}
}
