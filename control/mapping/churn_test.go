package mapping_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

// TestChurn drives thousands of random creates, terminates and peering
// changes while hosts disconnect and reconnect at random, etcd history is
// compacted and a server is replaced; at the end every host's cache equals
// exactly what the store says its scope holds.
func TestChurn(t *testing.T) {
	ops := 2000
	if testing.Short() {
		ops = 300
	}
	c := testcloud.New(t, etcd)
	api := c.API()
	s2 := c.StartServer("127.0.0.1:0")
	urls := []string{api.URL, s2.URL()}
	var hosts []*testcloud.Host
	for i := range 6 {
		hosts = append(hosts, c.AddHost(urls[i%2], fmt.Sprintf("host-%d", i), addr(i+1)))
	}
	const nVPC = 6
	for i := range nVPC {
		name := fmt.Sprintf("v%d", i)
		if _, err := api.VPC.CreateVpc(c.Ctx(), connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: fmt.Sprintf("10.%d.0.0/16", i)})); err != nil {
			t.Fatal(err)
		}
		if _, err := api.VPC.CreateSubnet(c.Ctx(), connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: fmt.Sprintf("10.%d.0.0/20", i), Name: name + "-a"})); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	live := map[string]bool{}
	peerings := map[string]string{} // id → "a/b"
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() int {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(100)
	}
	anyOf := func(m map[string]bool) string {
		for k := range m {
			return k
		}
		return ""
	}
	step := func(i int) error {
		ctx := c.Ctx()
		switch p := pick(); {
		case p < 45:
			// Host h runs instances of VPCs h and h+1 only, so scopes differ
			// and peering changes really grow and shrink them.
			h := p % len(hosts)
			r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{
				Subnet: fmt.Sprintf("v%d-a", (h+(p/len(hosts))%2)%nVPC), Host: fmt.Sprintf("host-%d", h),
			}))
			if err != nil {
				return err
			}
			mu.Lock()
			live[r.Msg.Instance.Id] = true
			mu.Unlock()
		case p < 75:
			mu.Lock()
			id := anyOf(live)
			delete(live, id)
			mu.Unlock()
			if id != "" {
				if _, err := api.Inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: id})); err != nil {
					return err
				}
			}
		case p < 80:
			a, b := p%nVPC, (p/3)%nVPC
			if a == b {
				return nil
			}
			r, err := api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: fmt.Sprintf("v%d", a), PeerVpc: fmt.Sprintf("v%d", b)}))
			if connect.CodeOf(err) == connect.CodeAlreadyExists {
				return nil
			} else if err != nil {
				return err
			}
			if _, err := api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: r.Msg.Peering.Id})); err != nil {
				return err
			}
			rt, err := api.VPC.GetVpc(ctx, connect.NewRequest(&pb.GetVpcRequest{Ref: fmt.Sprintf("v%d", a)}))
			if err != nil {
				return err
			}
			if _, err := api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{
				RouteTable: rt.Msg.Vpc.MainRouteTableId, DestinationCidr: fmt.Sprintf("10.%d.0.0/16", b), Target: r.Msg.Peering.Id,
			})); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists && connect.CodeOf(err) != connect.CodeFailedPrecondition {
				return err
			}
			mu.Lock()
			peerings[r.Msg.Peering.Id] = fmt.Sprintf("%d/%d", a, b)
			mu.Unlock()
		case p < 90:
			mu.Lock()
			var id string
			for k := range peerings {
				id = k
				break
			}
			delete(peerings, id)
			mu.Unlock()
			if id != "" {
				if _, err := api.VPC.DeletePeering(ctx, connect.NewRequest(&pb.DeletePeeringRequest{Ref: id})); err != nil {
					return err
				}
			}
		case p < 95:
			hosts[p%len(hosts)].Disconnect()
		default:
			hosts[p%len(hosts)].Connect()
		}
		return nil
	}

	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < ops; i += workers {
				if err := step(i); err != nil {
					errs <- fmt.Errorf("op %d: %w", i, err)
					return
				}
				switch i {
				case ops / 2: // history the hosts resumed from is gone
					rev, err := c.Server(0).Store.Revision(c.Ctx())
					if err == nil {
						err = c.Server(0).Store.Compact(c.Ctx(), rev)
					}
					if err != nil {
						errs <- err
						return
					}
				case 3 * ops / 4: // the second server is replaced
					c.StopServer(1)
					_, hostport, _ := strings.Cut(urls[1], "://")
					c.StartServer(hostport)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, h := range hosts {
		h.Connect()
	}
	c.Converge(api, hosts...)
	resumed := 0
	for _, h := range hosts {
		st := h.Mirror.State()
		t.Logf("%s: %d VPCs, %d mappings, %d snapshots, revision %d", h.ID, len(st.VPCs), len(st.Mappings), h.Mirror.Snapshots(), h.Mirror.Revision())
		if h.Mirror.Snapshots() < 3 {
			resumed++
		}
	}
	if resumed == 0 {
		t.Log("note: every host took several snapshots; resumption from revision was not exercised much")
	}
}
