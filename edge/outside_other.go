//go:build !linux

package edge

import "errors"

// TUNOutside needs Linux.
type TUNOutside struct{ unsupported }

type unsupported struct{}

func (unsupported) Read([][]byte, []int) (int, error) { return 0, errUnsupported }
func (unsupported) Write([][]byte) error              { return errUnsupported }
func (unsupported) BatchSize() int                    { return 1 }
func (unsupported) Close() error                      { return nil }

var errUnsupported = errors.New("edge: a TUN outside needs Linux")

// OpenTUNOutside needs Linux.
func OpenTUNOutside(name string, mtu int) (*TUNOutside, error) { return nil, errUnsupported }
