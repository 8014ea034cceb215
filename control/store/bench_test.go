package store

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// BenchmarkRunInstance measures `instance run` throughput on embedded
// etcd, with 1 and 32 concurrent clients, in instances per second.
func BenchmarkRunInstance(b *testing.B) {
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := newTestStore(b)
			c := context.Background()
			if _, err := s.CreateVPC(c, "bench", netip.MustParsePrefix("10.0.0.0/16")); err != nil {
				b.Fatal(err)
			}
			sn, err := s.CreateSubnet(c, "bench", netip.MustParsePrefix("10.0.0.0/16"), "", "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.RegisterHost(c, "h", netip.MustParseAddr("127.0.1.1"), pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
				b.Fatal(err)
			}
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						if _, err := s.RunInstance(c, RunSpec{Subnet: sn.Id}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "instances/s")
		})
	}
}
