//go:build linux

// Package dot1q makes a test's customer router speak 802.1Q on its link,
// the way a router's VLAN subinterface does, without VLAN devices (this
// kernel has none) and independently of openvpc's own tagging
// (edge/dx/vlan): a TC-eBPF program on the interface's egress pushes the
// tag, one on its ingress pops it and drops every frame of another VLAN
// or none. So a test that passes proves the edge's tags are really on the
// wire, not the same code agreeing with itself.
package dot1q

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Tag is a tagged interface; Close removes the tagging.
type Tag struct{ links []link.Link }

// Close detaches both programs.
func (t *Tag) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// Link tags the interface with ifindex (in the calling thread's
// namespace) with VLAN vid.
func Link(ifindex int, vid uint16) (*Tag, error) {
	const (
		tcOK   = 0
		tcShot = 2
	)
	// egress: every frame leaves with the tag (helper args: skb,
	// htons(ETH_P_8021Q), tci).
	out := asm.Instructions{
		asm.Mov.Imm(asm.R2, 0x0081),
		asm.Mov.Imm(asm.R3, int32(vid)),
		asm.FnSkbVlanPush.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R0, tcOK),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcShot).WithSymbol("drop"),
		asm.Return(),
	}
	// ingress: only frames of vid, untagged for the stack.
	in := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 20, asm.Word), // __sk_buff.vlan_present
		asm.JEq.Imm(asm.R2, 0, "drop"),
		asm.LoadMem(asm.R2, asm.R6, 24, asm.Word), // __sk_buff.vlan_tci
		asm.And.Imm(asm.R2, 0xfff),
		asm.JNE.Imm(asm.R2, int32(vid), "drop"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSkbVlanPop.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R0, tcOK),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcShot).WithSymbol("drop"),
		asm.Return(),
	}
	t := &Tag{}
	for _, p := range []struct {
		name   string
		ins    asm.Instructions
		attach ebpf.AttachType
	}{{"dot1q_out", out, ebpf.AttachTCXEgress}, {"dot1q_in", in, ebpf.AttachTCXIngress}} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: p.name, Type: ebpf.SchedCLS, License: "Apache-2.0", Instructions: p.ins})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("dot1q: %s: %w", p.name, err)
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: p.attach})
		prog.Close()
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("dot1q: attach %s to ifindex %d: %w", p.name, ifindex, err)
		}
		t.links = append(t.links, l)
	}
	return t, nil
}
