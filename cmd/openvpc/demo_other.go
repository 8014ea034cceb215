//go:build !linux

package main

import (
	"context"
	"errors"
)

const demoInNetns = "--in-own-netns"

func demoReexec(context.Context) error {
	return errors.New("the VPN and Direct Connect scenes need Linux")
}

func demoEnterNetns() error { return errors.New("the VPN and Direct Connect scenes need Linux") }
