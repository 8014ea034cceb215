package mapping

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
)

// BenchmarkDeltaScaling is the work one `instance run` (or terminate)
// costs per host in scope, as that host's cache grows: the server folding
// the record into its world and working out the host's delta, encoding it,
// and the host decoding it and applying it to its lookup tables. The
// network, etcd and the acknowledgement are not included: this is the part
// of P4's propagation latency that could grow with the cache, measured
// apart from the part that grows with the number of hosts.
//
// Shape: one VPC of n instances spread over 1,000 hosts; the host "big"
// runs one of them, so it holds all n mappings. Iterations alternate
// between running a new instance and terminating it, so the size stays n.
func BenchmarkDeltaScaling(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run("mappings="+size.name, func(b *testing.B) { benchDelta(b, size.n) })
	}
}

func benchDelta(b *testing.B, n int) {
	w := newWorld()
	rec := func(kind, id string, m proto.Message, rev int64, deleted bool) store.Record {
		v, _ := proto.Marshal(m)
		return store.Record{Kind: kind, ID: id, Value: v, CreateRevision: rev, ModRevision: rev, Deleted: deleted}
	}
	d := newDelta(1)
	vpc := &pb.Vpc{Id: model.NewID(model.KindVPC), Name: "big", Cidr: "10.0.0.0/12", Vni: 1}
	rt := &pb.RouteTable{Id: model.NewID(model.KindRouteTable), VpcId: vpc.Id, Main: true,
		Routes: []*pb.Route{{DestinationCidr: vpc.Cidr, Target: "local"}}}
	vpc.MainRouteTableId = rt.Id
	must(b, w.apply(rec(store.RecVPC, vpc.Id, vpc, 1, false), d))
	must(b, w.apply(rec(store.RecRouteTable, rt.Id, rt, 1, false), d))
	for i := range 1000 {
		h := &pb.Host{Id: fmt.Sprintf("h%d", i), UnderlayAddress: fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), Role: pb.HostRole_HOST_ROLE_HOST}
		must(b, w.apply(rec(store.RecHost, h.Id, h, 1, false), d))
	}
	must(b, w.apply(rec(store.RecHost, "big", &pb.Host{Id: "big", UnderlayAddress: "127.2.0.1", Role: pb.HostRole_HOST_ROLE_HOST}, 1, false), d))
	instance := func(i int) *pb.Instance {
		ip := model.AddrFrom4(10<<24 + uint32(i) + 4)
		host := fmt.Sprintf("h%d", i%1000)
		if i == 0 {
			host = "big"
		}
		return &pb.Instance{Id: model.FormatID(model.KindInstance, uint64(i+1)), VpcId: vpc.Id, HostId: host, EniId: model.FormatID(model.KindENI, uint64(i+1)),
			PrivateIp: ip.String(), Mac: model.MAC(vpc.Vni, ip), State: pb.InstanceState_INSTANCE_STATE_RUNNING}
	}
	for i := range n {
		inst := instance(i)
		must(b, w.apply(rec(store.RecInstance, inst.Id, inst, 1, false), d))
	}
	w.rev = 1

	// The host subscribes: its snapshot holds all n mappings.
	s := &Service{w: w, boxes: map[string]*mailbox{}, inScope: map[string]map[*mailbox]struct{}{}}
	box := newMailbox("big")
	msgs, _ := s.snapshotFor(box)
	cache := node.NewCache("big", slog.New(slog.NewTextHandler(io.Discard, nil)))
	snap := node.Batch{Snapshot: true, Revision: 1}
	for _, m := range msgs {
		snap.Changes = append(snap.Changes, m.Changes...)
	}
	must(b, cache.Apply(snap))
	if got := cache.Tables.Load().Len(); got != n {
		b.Fatalf("the host's cache holds %d mappings, want %d", got, n)
	}

	rev := int64(1)
	i := 0
	for b.Loop() {
		rev++
		inst := instance(n + i/2) // run it, then terminate it
		d := newDelta(rev)
		must(b, w.apply(rec(store.RecInstance, inst.Id, inst, rev, i%2 == 1), d))
		w.rev = rev
		w.markRelevant(d)
		out := s.deltaFor(box, d)
		if len(out) == 0 {
			b.Fatal("the host in scope got no delta")
		}
		wire, err := proto.Marshal(&pb.SubscribeResponse{Revision: rev, Changes: out})
		must(b, err)
		got := new(pb.SubscribeResponse)
		must(b, proto.Unmarshal(wire, got))
		must(b, cache.Apply(node.Batch{Revision: got.Revision, Changes: got.Changes}))
		i++
	}
	if got := cache.Tables.Load().Len(); got != n+i%2 {
		b.Fatalf("after %d deltas the host's cache holds %d mappings, want %d", i, got, n+i%2)
	}
}
