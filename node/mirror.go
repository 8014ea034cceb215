package node

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// MappingKey names one mapping: a private address in a VPC.
type MappingKey struct {
	VNI uint32
	IP  string
}

// Mirror is a plain-map copy of a host's scope, kept by applying batches.
// It is the reference the real cache is checked against in tests, and a
// lightweight simulated host for propagation benchmarks.
type Mirror struct {
	mu        sync.Mutex
	rev       int64
	vpcs      map[uint32]*pb.VpcFacts
	mappings  map[MappingKey]*pb.MappingRecord
	hosts     map[string]*pb.HostRecord
	snapshots int
	failures  []error
}

// NewMirror returns an empty Mirror.
func NewMirror() *Mirror {
	return &Mirror{vpcs: map[uint32]*pb.VpcFacts{}, mappings: map[MappingKey]*pb.MappingRecord{}, hosts: map[string]*pb.HostRecord{}}
}

// Apply installs one batch; it fails on a change that breaks the stream's
// promises (a mapping for a VPC not in scope, or whose host record has not
// arrived, or a host record removed while mappings still name it).
func (m *Mirror) Apply(b Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.apply(b); err != nil {
		m.failures = append(m.failures, err)
		return err
	}
	return nil
}

// Failures lists every broken promise seen.
func (m *Mirror) Failures() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]error(nil), m.failures...)
}

func (m *Mirror) apply(b Batch) error {
	if b.Snapshot {
		clear(m.vpcs)
		clear(m.mappings)
		clear(m.hosts)
		m.snapshots++
	}
	for _, c := range b.Changes {
		switch k := c.Kind.(type) {
		case *pb.Change_UpsertVpc:
			m.vpcs[k.UpsertVpc.Vni] = k.UpsertVpc
		case *pb.Change_RemoveVpc:
			delete(m.vpcs, k.RemoveVpc)
			for key := range m.mappings {
				if key.VNI == k.RemoveVpc {
					delete(m.mappings, key)
				}
			}
		case *pb.Change_UpsertMapping:
			r := k.UpsertMapping
			if _, ok := m.vpcs[r.Vni]; !ok {
				return fmt.Errorf("mapping %s/%s arrived for VNI %d outside the scope", r.InstanceId, r.Ip, r.Vni)
			}
			if _, ok := m.hosts[r.HostId]; !ok {
				return fmt.Errorf("mapping %s/%s arrived before the record of its host %s", r.InstanceId, r.Ip, r.HostId)
			}
			m.mappings[MappingKey{r.Vni, r.Ip}] = r
		case *pb.Change_DeleteMapping:
			delete(m.mappings, MappingKey{k.DeleteMapping.Vni, k.DeleteMapping.Ip})
		case *pb.Change_UpsertHost:
			m.hosts[k.UpsertHost.Id] = k.UpsertHost
		case *pb.Change_DeleteHost:
			for _, r := range m.mappings {
				if r.HostId == k.DeleteHost {
					return fmt.Errorf("host record %s removed while mapping %s/%s names it", k.DeleteHost, r.InstanceId, r.Ip)
				}
			}
			delete(m.hosts, k.DeleteHost)
		}
	}
	m.rev = b.Revision
	return nil
}

// Revision is the last revision applied.
func (m *Mirror) Revision() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// Snapshots counts the snapshots applied (the rest were deltas).
func (m *Mirror) Snapshots() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshots
}

// Lookup answers one mapping.
func (m *Mirror) Lookup(vni uint32, ip string) (*pb.MappingRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.mappings[MappingKey{vni, ip}]
	return r, ok
}

// State is a copy of what the mirror holds.
type State struct {
	VPCs     map[uint32]*pb.VpcFacts
	Mappings map[MappingKey]*pb.MappingRecord
	Hosts    map[string]*pb.HostRecord
}

// State copies the mirror's contents.
func (m *Mirror) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := State{VPCs: map[uint32]*pb.VpcFacts{}, Mappings: map[MappingKey]*pb.MappingRecord{}, Hosts: map[string]*pb.HostRecord{}}
	for k, v := range m.vpcs {
		s.VPCs[k] = proto.CloneOf(v)
	}
	for k, v := range m.mappings {
		s.Mappings[k] = proto.CloneOf(v)
	}
	for k, v := range m.hosts {
		s.Hosts[k] = proto.CloneOf(v)
	}
	return s
}
