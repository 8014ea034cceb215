//go:build !linux

package dx

import (
	"context"
	"errors"

	"github.com/openvpc/openvpc/edge/dx/vlan"
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
