package mapping

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
)

// BenchmarkSnapshot1M measures the snapshot of a host whose scope holds
// 1M mappings (16 VPCs of 62,500 instances; the host runs one instance in
// each): the server building it from its world, encoding it, the host
// decoding it and applying it to its lookup tables. The network between
// them is not included.
func BenchmarkSnapshot1M(b *testing.B) {
	const vpcs, per = 16, 62500
	w := newWorld()
	d := newDelta(1)
	rec := func(kind, id string, m proto.Message) store.Record {
		v, _ := proto.Marshal(m)
		return store.Record{Kind: kind, ID: id, Value: v, CreateRevision: 1, ModRevision: 1}
	}
	for v := range vpcs {
		vpc := &pb.Vpc{Id: model.NewID(model.KindVPC), Name: fmt.Sprint(v), Cidr: fmt.Sprintf("10.%d.0.0/16", v), Vni: uint32(v + 1)}
		rt := &pb.RouteTable{Id: model.NewID(model.KindRouteTable), VpcId: vpc.Id, Main: true,
			Routes: []*pb.Route{{DestinationCidr: vpc.Cidr, Target: "local"}}}
		vpc.MainRouteTableId = rt.Id
		must(b, w.apply(rec(store.RecVPC, vpc.Id, vpc), d))
		must(b, w.apply(rec(store.RecRouteTable, rt.Id, rt), d))
		for i := range per {
			ip := model.AddrFrom4(model.Addr4(model.AddrFrom4(uint32(10)<<24|uint32(v)<<16)) + uint32(i) + 4)
			host := fmt.Sprintf("h%d", i%1000)
			if i == 0 {
				host = "big"
			}
			inst := &pb.Instance{Id: model.NewID(model.KindInstance), VpcId: vpc.Id, HostId: host, EniId: model.NewID(model.KindENI),
				PrivateIp: ip.String(), Mac: model.MAC(vpc.Vni, ip), State: pb.InstanceState_INSTANCE_STATE_RUNNING}
			must(b, w.apply(rec(store.RecInstance, inst.Id, inst), d))
		}
	}
	for i := range 1000 {
		h := &pb.Host{Id: fmt.Sprintf("h%d", i), UnderlayAddress: fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), Role: pb.HostRole_HOST_ROLE_HOST}
		must(b, w.apply(rec(store.RecHost, h.Id, h), d))
	}
	must(b, w.apply(rec(store.RecHost, "big", &pb.Host{Id: "big", UnderlayAddress: "127.2.0.1", Role: pb.HostRole_HOST_ROLE_HOST}), d))
	s := &Service{w: w, boxes: map[string]*mailbox{}, inScope: map[string]map[*mailbox]struct{}{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	var build, encode, apply time.Duration
	for range b.N {
		t0 := time.Now()
		msgs, _ := s.snapshotFor(newMailbox("big"))
		t1 := time.Now()
		var wire [][]byte
		for _, m := range msgs {
			buf, err := proto.Marshal(m)
			must(b, err)
			wire = append(wire, buf)
		}
		t2 := time.Now()
		cache := node.NewCache("big", log)
		batch := node.Batch{Snapshot: true}
		for _, buf := range wire {
			m := new(pb.SubscribeResponse)
			must(b, proto.Unmarshal(buf, m))
			batch.Changes = append(batch.Changes, m.Changes...)
			batch.Revision = m.Revision
		}
		must(b, cache.Apply(batch))
		t3 := time.Now()
		if n := cache.Tables.Load().Len(); n != vpcs*per {
			b.Fatalf("cache holds %d mappings, want %d", n, vpcs*per)
		}
		build, encode, apply = build+t1.Sub(t0), encode+t2.Sub(t1), apply+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(build.Seconds()/n*1000, "build-ms")
	b.ReportMetric(encode.Seconds()/n*1000, "encode-ms")
	b.ReportMetric(apply.Seconds()/n*1000, "decode+apply-ms")
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
