package mapping_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

// BenchmarkPropagation measures API write → acknowledged by all N hosts:
// the time from `instance run` until the instance is running, which the
// Mapping Service declares only once every host in scope has acknowledged
// the revision holding its mapping.
//
// Shape: a hub VPC peered with spoke VPCs of up to 100 hosts each (every
// host runs one instance in its spoke), so every host has the hub in scope
// without the setup costing N² deliveries. Each iteration runs one
// instance in the hub, which must reach all N hosts.
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) { benchPropagation(b, n) })
	}
}

func benchPropagation(b *testing.B, n int) {
	// Thousands of hosts, each with a TLS connection of its own, would
	// measure handshakes and run out of descriptors: this measures fan-out.
	c := testcloud.NewWith(b, etcd, testcloud.Options{Insecure: true})
	c.Heartbeat = time.Minute // thousands of idle heartbeats would be noise
	api := c.API()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	mustVPC := func(name, cidr string) {
		if _, err := api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: cidr})); err != nil {
			b.Fatal(err)
		}
		if _, err := api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: cidr, Name: name})); err != nil {
			b.Fatal(err)
		}
	}
	mustVPC("hub", "10.0.0.0/16")
	hub, _ := api.VPC.GetVpc(ctx, connect.NewRequest(&pb.GetVpcRequest{Ref: "hub"}))
	hubVNI := hub.Msg.Vpc.Vni
	spokes := (n + 99) / 100
	for s := 1; s <= spokes; s++ {
		name := fmt.Sprintf("spoke-%d", s)
		mustVPC(name, fmt.Sprintf("10.%d.0.0/16", s))
		p, err := api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "hub", PeerVpc: name}))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
			b.Fatal(err)
		}
	}
	hosts := make([]*testcloud.Host, n)
	parallel(b, n, func(i int) error {
		hosts[i] = c.AddHost(api.URL, fmt.Sprintf("h%d", i), netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}))
		_, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{
			Subnet: fmt.Sprintf("spoke-%d", i/100+1), Host: fmt.Sprintf("h%d", i),
		}))
		return err
	})
	// Let setup traffic drain before measuring.
	last, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "hub", Host: "h0"}))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: last.Msg.Instance.Id, TimeoutMs: 120000})); err != nil {
		b.Fatal(err)
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "hub", Host: fmt.Sprintf("h%d", i%n)}))
		if err != nil {
			b.Fatal(err)
		}
		created := time.Since(start)
		// OPENVPC_BENCH_PROBE=1 splits each sample: until the instance was
		// written, until every host applied it, until it was running.
		if os.Getenv("OPENVPC_BENCH_PROBE") != "" {
			for _, h := range hosts {
				for {
					if _, ok := h.Mirror.Lookup(hubVNI, r.Msg.Instance.PrivateIp); ok {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			fmt.Println("created", created, "applied by all", time.Since(start))
		}
		if _, err := api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 60000})); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if os.Getenv("OPENVPC_BENCH_PROBE") != "" {
			fmt.Println("running", time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// parallel runs f(0..n-1) on 32 workers and fails b on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
