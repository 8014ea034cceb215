//go:build !linux

package cli

import (
	"errors"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func execIn(*pb.Instance, []string) error {
	return errors.New("exec enters a Linux network namespace: run it on the Linux machine of the instance's host")
}
