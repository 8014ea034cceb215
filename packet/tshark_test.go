package packet

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTshark checks the encoder against an independent decoder: Wireshark's Geneve, IPv4,
// ICMP and TCP dissectors, with checksum validation on, must read our packets the way we
// mean them. Skipped without tshark, unless OPENVPC_E2E=1 makes that a failure.
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("tshark not on PATH and OPENVPC_E2E=1 (apt-get install tshark)")
		}
		t.Skip("tshark not on PATH")
	}

	echo := Encap{Src: hostA, Dst: hostB, VNI: 0x123456,
		Options: GeneveOptions{SourceVNI: 0x0abcde, HasTrace: true, TraceID: 0xcafe}}
	syn := Encap{Src: hostB, Dst: hostA, VNI: 0x000042,
		Options: GeneveOptions{SourceVNI: 0x000043, SourceFlags: 0x01, HasEndpoint: true, EndpointID: 0x1122334455667788}}
	// A host's packet for an edge function: the internet gateway (function 3) igw-00000000000000a1.
	toEdge := Encap{Src: hostA, Dst: hostB, VNI: 0x000042,
		Options: GeneveOptions{SourceVNI: 0x000042, HasTarget: true, Function: 3, Target: 0xa1}}
	pkts := [][]byte{
		encapWithFlowPort(t, &echo, func(b []byte) IPv4 { return icmpEcho(b, instA, instB, 0x4242, 1, "openvpc") }),
		encapWithFlowPort(t, &syn, func(b []byte) IPv4 { return tcpSegment(b, instB, instA, 40000, 443, TCPFlagSYN, "") }),
		encapWithFlowPort(t, &toEdge, func(b []byte) IPv4 { return udpDatagram(b, instA, instB, 40001, 9999, "data") }),
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "encap.pcap")
	if err := os.WriteFile(file, pcap(pkts), 0o644); err != nil {
		t.Fatal(err)
	}

	fields := []string{
		"ip.src", "ip.dst", "ip.proto", "ip.checksum.status", "udp.srcport", "udp.dstport",
		"geneve.version", "geneve.flags.critical", "geneve.proto_type", "geneve.vni",
		"geneve.option.class", "geneve.option.type", "geneve.option.length", "geneve.option.unknown.data",
		"icmp.type", "icmp.ident", "icmp.checksum.status",
		"tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.checksum.status",
		"_ws.malformed", "_ws.expert.severity",
	}
	args := []string{"-r", file, "-n",
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, args...)
	// tshark writes temporary and profile files: keep them in the test's directory.
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tshark printed %d lines for %d packets:\n%s\n%s", len(lines), len(pkts), out, stderr.String())
	}

	// As tshark prints them: outer then inner values joined by commas; the first
	// geneve.option.length is the header's total options length, in bytes; checksum
	// status 1 is "good".
	wantRows := []map[string]string{
		{
			"ip.src": "192.0.2.10,10.0.1.5", "ip.dst": "198.51.100.20,10.0.2.7", "ip.proto": "17,1",
			"ip.checksum.status": "1,1", "udp.srcport": strconv.Itoa(int(echo.SrcPort)), "udp.dstport": "6081",
			"geneve.version": "0", "geneve.flags.critical": "0", "geneve.proto_type": "0x0800",
			"geneve.vni": "0x123456", "geneve.option.class": "0xfff0,0xfff0", "geneve.option.type": "0x01,0x03",
			"geneve.option.length": "16,8,8", "geneve.option.unknown.data": "0abcde00,0000cafe",
			"icmp.type": "8", "icmp.ident": "16962", "icmp.checksum.status": "1",
		},
		{
			"ip.src": "198.51.100.20,10.0.2.7", "ip.dst": "192.0.2.10,10.0.1.5", "ip.proto": "17,6",
			"ip.checksum.status": "1,1", "udp.srcport": strconv.Itoa(int(syn.SrcPort)), "udp.dstport": "6081",
			"geneve.version": "0", "geneve.flags.critical": "1", "geneve.proto_type": "0x0800",
			"geneve.vni": "0x000042", "geneve.option.class": "0xfff0,0xfff0", "geneve.option.type": "0x01,0x82",
			"geneve.option.length": "20,8,12", "geneve.option.unknown.data": "00004301,1122334455667788",
			"tcp.srcport": "40000", "tcp.dstport": "443", "tcp.flags.syn": "1", "tcp.checksum.status": "1",
		},
		{
			"ip.src": "192.0.2.10,10.0.1.5", "ip.dst": "198.51.100.20,10.0.2.7", "ip.proto": "17,17",
			"ip.checksum.status": "1,1", "udp.srcport": strconv.Itoa(int(toEdge.SrcPort)) + ",40001", "udp.dstport": "6081,9999",
			"geneve.version": "0", "geneve.flags.critical": "1", "geneve.proto_type": "0x0800",
			"geneve.vni": "0x000042", "geneve.option.class": "0xfff0,0xfff0", "geneve.option.type": "0x01,0x84",
			"geneve.option.length": "24,8,16", "geneve.option.unknown.data": "00004200,03000000" + "00000000000000a1",
		},
	}
	for i, line := range lines {
		got := map[string]string{}
		for j, v := range strings.Split(line, "\t") {
			got[fields[j]] = v
		}
		for f, want := range wantRows[i] {
			if got[f] != want {
				t.Errorf("packet %d: %s = %q, want %q", i+1, f, got[f], want)
			}
		}
		if got["_ws.malformed"] != "" {
			t.Errorf("packet %d: tshark calls it malformed", i+1)
		}
		// Expert info below warning (a SYN is "chat") is fine; warnings and errors are not.
		for _, sev := range strings.Split(got["_ws.expert.severity"], ",") {
			if n, _ := strconv.Atoi(sev); n >= piWarn {
				t.Errorf("packet %d: tshark expert info of severity %#x", i+1, n)
			}
		}
		if t.Failed() {
			t.Logf("packet %d as tshark reads it: %v", i+1, got)
		}
	}
}

// piWarn is Wireshark's PI_WARN expert severity.
const piWarn = 0x00600000

// encapWithFlowPort builds an inner packet at Headroom and encapsulates it the way the data
// path does, with the UDP source port taken from the flow hash.
func encapWithFlowPort(t *testing.T, e *Encap, inner func(b []byte) IPv4) []byte {
	buf := make([]byte, Headroom+1500)
	in := inner(buf[Headroom:])
	e.SrcPort = SourcePort(FlowHash(in))
	start, ok := Encapsulate(buf, len(in), e)
	if !ok {
		t.Fatalf("Encapsulate(%+v) failed", e)
	}
	return buf[start : Headroom+len(in)]
}

// pcap returns a classic pcap file (little-endian, microsecond timestamps) of raw IPv4
// packets: link type 228, LINKTYPE_IPV4, so no fake Ethernet header is needed.
func pcap(pkts [][]byte) []byte {
	const linkTypeIPv4 = 228
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0xa1b2c3d4) // magic
	b = binary.LittleEndian.AppendUint16(b, 2)          // version 2.4
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = binary.LittleEndian.AppendUint32(b, 0)      // timezone offset
	b = binary.LittleEndian.AppendUint32(b, 0)      // timestamp accuracy
	b = binary.LittleEndian.AppendUint32(b, 0xffff) // snap length
	b = binary.LittleEndian.AppendUint32(b, linkTypeIPv4)
	for i, p := range pkts {
		b = binary.LittleEndian.AppendUint32(b, 1700000000+uint32(i)) // seconds
		b = binary.LittleEndian.AppendUint32(b, 0)                    // microseconds
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))       // captured length
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))       // original length
		b = append(b, p...)
	}
	return b
}
