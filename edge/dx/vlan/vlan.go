//go:build linux

// Package vlan carries a Direct Connect port's 802.1Q tags without VLAN
// devices (this kernel has none): small TC-eBPF programs on TCX, written
// with cilium/ebpf's asm (no C compiler), pop the tag of each frame that
// arrives on the port and redirect it to the untagged link of its virtual
// interface; frames a VIF sends get its tag pushed and go out of the
// port. A frame with no tag, or with a VLAN id no VIF has, is dropped and
// counted. So each VIF is an ordinary untagged link to the kernel (its
// BGP session's TCP with MD5, ARP, routing) while the wire carries tags.
// The port's own stack stays off the wire: an untagged frame it would
// send (an IGMP report when the link comes up) is dropped and counted.
//
// Why not AF_PACKET in userspace: every frame would cross into the edge
// process and back (two copies and two syscalls per frame per direction,
// as much as the Geneve path), and the BGP session's own TCP would have to
// run over a TAP; in TC the kernel moves the frame from one device to
// another with one metadata change.
package vlan

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Offsets in struct __sk_buff (include/uapi/linux/bpf.h).
const (
	skbVlanPresent = 20
	skbVlanTCI     = 24
)

// TC verdicts.
const (
	tcActOK   = 0
	tcActShot = 2
)

// ethP8021Q is ETH_P_8021Q as the helper takes it: big-endian in a u16
// (so byte-swapped on little-endian machines).
const ethP8021Q = 0x0081

// Counter indexes in the per-CPU counter array.
const (
	cntIn       = iota // tagged frames of a VIF, popped and handed to it
	cntOut             // frames a VIF sent, tagged and out of the port
	cntUntagged        // frames on the port without a tag: dropped
	cntUnknown         // frames with a VLAN id no VIF has: dropped
	cntErrors          // a push or pop failed: dropped
	cntLocal           // untagged frames of the port's own stack: kept off the wire
	numCounters
)

// Counters are the port's frame counts since Attach. Local counts the
// untagged frames the edge's own stack tried to send on the port.
type Counters struct {
	In, Out, Untagged, UnknownVLAN, Errors, Local uint64
}

// Port is a Direct Connect port with its VIFs' tags.
type Port struct {
	ifindex  int
	vifs     *ebpf.Map // VLAN id → ifindex of the VIF's link (0: none)
	counters *ebpf.Map
	perVLAN  *ebpf.Map // VLAN id → frames in, frames out (per CPU)
	ingress  link.Link
	egress   link.Link

	mu     sync.Mutex
	tags   map[uint16]vif
	closed bool // the maps are freed: counters read zero
}

type vif struct {
	ifindex int
	link    link.Link
	prog    *ebpf.Program
}

// Attach puts the demultiplexer on the port with ifindex (in the calling
// thread's network namespace: the caller runs it there).
func Attach(ifindex int) (*Port, error) {
	vifs, err := ebpf.NewMap(&ebpf.MapSpec{Name: "dx_vifs", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 4096})
	if err != nil {
		return nil, fmt.Errorf("vlan: VIF map: %w", err)
	}
	counters, err := ebpf.NewMap(&ebpf.MapSpec{Name: "dx_counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: numCounters})
	if err != nil {
		vifs.Close()
		return nil, fmt.Errorf("vlan: counters: %w", err)
	}
	perVLAN, err := ebpf.NewMap(&ebpf.MapSpec{Name: "dx_vlan_frames", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 4096})
	if err != nil {
		vifs.Close()
		counters.Close()
		return nil, fmt.Errorf("vlan: VLAN counters: %w", err)
	}
	p := &Port{ifindex: ifindex, vifs: vifs, counters: counters, perVLAN: perVLAN, tags: map[uint16]vif{}}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "dx_port_in", Type: ebpf.SchedCLS, License: "Apache-2.0", Instructions: p.portIngress()})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vlan: port program: %w", err)
	}
	defer prog.Close() // the link holds it
	p.ingress, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vlan: attach to port ifindex %d: %w", ifindex, err)
	}
	out, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "dx_port_out", Type: ebpf.SchedCLS, License: "Apache-2.0", Instructions: p.portEgress()})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vlan: port egress program: %w", err)
	}
	defer out.Close()
	p.egress, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: out, Attach: ebpf.AttachTCXEgress})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vlan: attach to port ifindex %d egress: %w", ifindex, err)
	}
	return p, nil
}

// count adds one to counter idx; it clobbers R1–R5 and R0 and keeps R6–R9.
func (p *Port) count(idx int32, label string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -8, int64(idx), asm.Word).WithSymbol(label),
		asm.LoadMapPtr(asm.R1, p.counters.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label+"_done"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord), // per-CPU: no atomics needed
		asm.Mov.Imm(asm.R0, 0).WithSymbol(label + "_done"),
	}
}

// countVLAN adds one to the in (off 0) or out (off 8) frames of the VLAN
// whose id is at R10-12; it clobbers R0–R5.
func (p *Port) countVLAN(off int16, label string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, p.perVLAN.FD()).WithSymbol(label),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -12),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label+"_done"),
		asm.LoadMem(asm.R1, asm.R0, off, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, off, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(label + "_done"),
	}
}

// portIngress: the tag names the VIF; pop it and redirect to the VIF's
// link, or drop and count.
func (p *Port) portIngress() asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbVlanPresent, asm.Word),
		asm.JEq.Imm(asm.R0, 0, "untagged"),
		asm.LoadMem(asm.R7, asm.R6, skbVlanTCI, asm.Word),
		asm.And.Imm(asm.R7, 0x0fff),
		asm.StoreMem(asm.R10, -4, asm.R7, asm.Word),
		asm.StoreMem(asm.R10, -12, asm.R7, asm.Word),
		asm.LoadMapPtr(asm.R1, p.vifs.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "unknown"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R8, 0, "unknown"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSkbVlanPop.Call(),
		asm.JNE.Imm(asm.R0, 0, "error"),
	}
	ins = append(ins, p.count(cntIn, "in")...)
	ins = append(ins, p.countVLAN(0, "vlan_in")...)
	ins = append(ins,
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Mov.Imm(asm.R2, 0), // to the VIF link's egress: its peer in the VIF namespace receives it
		asm.FnRedirect.Call(),
		asm.Return(),
	)
	for _, drop := range []struct {
		label string
		idx   int32
	}{{"untagged", cntUntagged}, {"unknown", cntUnknown}, {"error", cntErrors}} {
		ins = append(ins, p.count(drop.idx, drop.label)...)
		ins = append(ins, asm.Mov.Imm(asm.R0, tcActShot), asm.Return())
	}
	return ins
}

// portEgress: a frame leaving the port carries a VIF's tag (vifEgress
// pushed it and redirected the frame here); an untagged one is the edge's
// own stack speaking on the customer's wire, which has no address there:
// dropped and counted.
func (p *Port) portEgress() asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbVlanPresent, asm.Word),
		asm.JEq.Imm(asm.R0, 0, "local"),
		asm.Mov.Imm(asm.R0, tcActOK),
		asm.Return(),
	}
	ins = append(ins, p.count(cntLocal, "local")...)
	return append(ins, asm.Mov.Imm(asm.R0, tcActShot), asm.Return())
}

// vifEgress: a frame from VIF vid's link gets the tag and goes out of the
// port. Anything already tagged is refused: a VIF's stack never tags.
func (p *Port) vifEgress(vid uint16) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbVlanPresent, asm.Word),
		asm.JNE.Imm(asm.R0, 0, "error"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, ethP8021Q),
		asm.Mov.Imm(asm.R3, int32(vid)),
		asm.FnSkbVlanPush.Call(),
		asm.JNE.Imm(asm.R0, 0, "error"),
	}
	ins = append(ins, p.count(cntOut, "out")...)
	ins = append(ins, asm.StoreImm(asm.R10, -12, int64(vid), asm.Word))
	ins = append(ins, p.countVLAN(8, "vlan_out")...)
	ins = append(ins,
		asm.Mov.Imm(asm.R1, int32(p.ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	)
	ins = append(ins, p.count(cntErrors, "error")...)
	return append(ins, asm.Mov.Imm(asm.R0, tcActShot), asm.Return())
}

// AddVIF joins VLAN vid to the link with ifindex (the edge's end of a veth
// whose other end is in the VIF's namespace), in the calling thread's
// namespace (the port's).
func (p *Port) AddVIF(vid uint16, ifindex int) error {
	if vid < 1 || vid > 4094 {
		return fmt.Errorf("vlan: VLAN id %d: use 1–4094", vid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.tags[vid]; ok {
		return fmt.Errorf("vlan: VLAN %d already has a VIF on this port", vid)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "dx_vif_out", Type: ebpf.SchedCLS, License: "Apache-2.0", Instructions: p.vifEgress(vid)})
	if err != nil {
		return fmt.Errorf("vlan: VIF program: %w", err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		prog.Close()
		return fmt.Errorf("vlan: attach to VIF link ifindex %d: %w", ifindex, err)
	}
	if err := p.vifs.Put(uint32(vid), uint32(ifindex)); err != nil {
		l.Close()
		prog.Close()
		return fmt.Errorf("vlan: VIF map: %w", err)
	}
	p.tags[vid] = vif{ifindex: ifindex, link: l, prog: prog}
	return nil
}

// RemoveVIF takes VLAN vid off the port: its frames count as unknown.
func (p *Port) RemoveVIF(vid uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.tags[vid]
	if !ok {
		return fmt.Errorf("vlan: no VIF on VLAN %d", vid)
	}
	delete(p.tags, vid)
	zero := make([][2]uint64, ebpf.MustPossibleCPU())
	return errors.Join(p.vifs.Put(uint32(vid), uint32(0)), p.perVLAN.Put(uint32(vid), zero), v.link.Close(), v.prog.Close())
}

// Counters sums the per-CPU counters.
func (p *Port) Counters() Counters {
	p.mu.Lock() // Close frees the maps
	defer p.mu.Unlock()
	var c [numCounters]uint64
	if p.closed {
		return Counters{}
	}
	for i := range c {
		var per []uint64
		if err := p.counters.Lookup(uint32(i), &per); err == nil {
			for _, n := range per {
				c[i] += n
			}
		}
	}
	return Counters{In: c[cntIn], Out: c[cntOut], Untagged: c[cntUntagged], UnknownVLAN: c[cntUnknown], Errors: c[cntErrors], Local: c[cntLocal]}
}

// VLANFrames are the frames VLAN vid carried in (from the port to its VIF)
// and out (from its VIF to the port) since Attach.
func (p *Port) VLANFrames(vid uint16) (in, out uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, 0
	}
	var per [][2]uint64
	if err := p.perVLAN.Lookup(uint32(vid), &per); err != nil {
		return 0, 0
	}
	for _, c := range per {
		in += c[0]
		out += c[1]
	}
	return in, out
}

// Close detaches every program and frees the maps.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for vid, v := range p.tags {
		errs = append(errs, v.link.Close(), v.prog.Close())
		delete(p.tags, vid)
	}
	for _, l := range []*link.Link{&p.ingress, &p.egress} {
		if *l != nil {
			errs = append(errs, (*l).Close())
			*l = nil
		}
	}
	if p.closed {
		return errors.Join(errs...)
	}
	p.closed = true
	errs = append(errs, p.vifs.Close(), p.counters.Close(), p.perVLAN.Close())
	return errors.Join(errs...)
}
