//go:build !linux

package dx

import (
	"context"
	"errors"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/dx/vlan"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Function is the Direct Connect function; it needs Linux (TC-eBPF,
// network namespaces).
type Function struct{}

var errLinux = errors.New("dx: Direct Connect ports need Linux (TC-eBPF and network namespaces)")

func New(Config) (*Function, error)             { return nil, errLinux }
func (f *Function) Set([]VIF) error             { return errLinux }
func (f *Function) Run(context.Context) error   { return errLinux }
func (f *Function) Statuses() map[string]Status { return nil }
func (f *Function) Counters() vlan.Counters     { return vlan.Counters{} }

// Data is the Direct Connect data path; without Linux it carries nothing.
type Data struct{}

func NewData() *Data                    { return &Data{} }
func (d *Data) Bind(*tables.Tables)     {}
func (d *Data) Refresh()                {}
func (d *Data) Kind() tables.TargetKind { return tables.TargetDirectConnect }
func (d *Data) Targets() []uint64       { return nil }
func (d *Data) Outside() datapath.Port  { return nil }
func (d *Data) FromVPC(*tables.Snapshot, uint32, uint64, packet.IPv4, *datapath.Trace) datapath.Verdict {
	return datapath.NoRoute
}
func (d *Data) FromOutside(*tables.Snapshot, packet.IPv4, *datapath.Trace) (uint32, datapath.Verdict) {
	return 0, datapath.NoRoute
}
