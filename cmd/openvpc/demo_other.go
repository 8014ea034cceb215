//go:build !linux

package main

import "errors"

const demoInNetns = "--in-own-netns"

func demoReexec() error { return errors.New("the VPN and Direct Connect scenes need Linux") }

func demoEnterNetns() error { return errors.New("the VPN and Direct Connect scenes need Linux") }
