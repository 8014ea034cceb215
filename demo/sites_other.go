//go:build !linux

package demo

import (
	"context"
	"errors"

	"github.com/openvpc/openvpc/edge"
)

// Scenes 7 and 8 need Linux (network namespaces, TUNs, BPF); SitesMissing
// says so, and these are never reached.

type sites struct{}

var errSites = errors.New("the VPN and Direct Connect scenes need Linux")

func newSites(string) *sites { return &sites{} }

func (s *sites) close() {}

func (s *sites) edgeFunctions(string) ([]edge.Function, func(*edge.Node), error) {
	return nil, nil, errSites
}

func (d *demo) scene7(context.Context) (Scene, error) { return Scene{}, errSites }
func (d *demo) scene8(context.Context) (Scene, error) { return Scene{}, errSites }
