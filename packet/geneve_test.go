package packet

import (
	"bytes"
	"testing"
)

func TestWriteGeneveLayout(t *testing.T) {
	b := make([]byte, 64)
	o := GeneveOptions{SourceVNI: 0xabcdef, SourceFlags: 0x5a, HasEndpoint: true, EndpointID: 0x0102030405060708, HasTrace: true, TraceID: 0xcafef00d}
	n := WriteGeneve(b, 0x123456, o)
	want := []byte{
		0x07, 0x40, 0x08, 0x00, 0x12, 0x34, 0x56, 0x00, // 7 words of options, C set, IPv4, VNI
		0xff, 0xf0, 0x01, 0x01, 0xab, 0xcd, 0xef, 0x5a, // SourceVPC
		0xff, 0xf0, 0x82, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, // EndpointID, critical
		0xff, 0xf0, 0x03, 0x01, 0xca, 0xfe, 0xf0, 0x0d, // TraceID
	}
	if n != len(want) || !bytes.Equal(b[:n], want) {
		t.Fatalf("WriteGeneve = %d bytes\n% x, want\n% x", n, b[:n], want)
	}
	g := Geneve(b[:n])
	if !g.Valid() || g.Version() != 0 || g.OptLen() != 7 || g.HeaderLen() != n || g.OAM() || !g.Critical() ||
		g.ProtocolType() != GeneveProtoIPv4 || g.VNI() != 0x123456 || len(g.Payload()) != 0 {
		t.Errorf("view reads back wrongly")
	}
	g.SetVNI(0xfedcba)
	if g.VNI() != 0xfedcba || g[7] != 0 {
		t.Errorf("SetVNI: VNI %#x reserved %#x", g.VNI(), g[7])
	}
}

func TestGeneveOptionsRoundTrip(t *testing.T) {
	tests := []GeneveOptions{
		{},
		{SourceVNI: MaxVNI, SourceFlags: 0xff},
		{SourceVNI: 7, HasEndpoint: true, EndpointID: 1<<64 - 1},
		{SourceVNI: 7, HasTrace: true, TraceID: 42},
		{SourceVNI: 1, SourceFlags: 2, HasEndpoint: true, EndpointID: 3, HasTrace: true, TraceID: 4},
		{SourceVNI: 9, HasTarget: true, Function: 3, Target: 0x0123456789abcdef},
		{SourceVNI: 1, HasEndpoint: true, EndpointID: 3, HasTrace: true, TraceID: 4, HasTarget: true, Function: 6, Target: 1<<64 - 1},
	}
	for _, o := range tests {
		b := make([]byte, 64)
		n := WriteGeneve(b, 99, o)
		if n != GeneveMinSize+o.Len() {
			t.Fatalf("%+v: wrote %d bytes, want %d", o, n, GeneveMinSize+o.Len())
		}
		got, ok := ParseGeneveOptions(Geneve(b[:n]))
		if !ok || got != o {
			t.Errorf("%+v: parsed back %+v, %v", o, got, ok)
		}
		if Geneve(b).Critical() != (o.HasEndpoint || o.HasTarget) {
			t.Errorf("%+v: C bit %v", o, Geneve(b).Critical())
		}
	}
}

// The EdgeTarget option, byte by byte: function, three reserved bytes, the target id.
func TestWriteGeneveEdgeTarget(t *testing.T) {
	b := make([]byte, 64)
	n := WriteGeneve(b, 0x42, GeneveOptions{SourceVNI: 0x42, HasTarget: true, Function: 3, Target: 0x0102030405060708})
	want := []byte{
		0x06, 0x40, 0x08, 0x00, 0x00, 0x00, 0x42, 0x00, // 6 words of options, C set
		0xff, 0xf0, 0x01, 0x01, 0x00, 0x00, 0x42, 0x00, // SourceVPC
		0xff, 0xf0, 0x84, 0x03, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, // EdgeTarget, critical
	}
	if n != len(want) || !bytes.Equal(b[:n], want) {
		t.Fatalf("WriteGeneve = %d bytes\n% x, want\n% x", n, b[:n], want)
	}
	// A wrong length or a second copy is refused, like any of our options.
	bad := append([]byte(nil), want...)
	bad[19] = 0x02
	if _, ok := ParseGeneveOptions(Geneve(bad[:n-4])); ok {
		t.Error("an EdgeTarget of 8 bytes parsed")
	}
	twice := append(append([]byte(nil), want...), want[16:]...)
	twice[0] = 0x0a
	if _, ok := ParseGeneveOptions(Geneve(twice)); ok {
		t.Error("two EdgeTarget options parsed")
	}
}

func TestWriteGeneveRefuses(t *testing.T) {
	if n := WriteGeneve(make([]byte, 15), 1, GeneveOptions{}); n != 0 {
		t.Errorf("short buffer: wrote %d", n)
	}
	if n := WriteGeneve(make([]byte, 64), MaxVNI+1, GeneveOptions{}); n != 0 {
		t.Errorf("VNI too big: wrote %d", n)
	}
	if n := WriteGeneve(make([]byte, 64), 1, GeneveOptions{SourceVNI: MaxVNI + 1}); n != 0 {
		t.Errorf("source VNI too big: wrote %d", n)
	}
}

func TestOverheadConstants(t *testing.T) {
	if got := (GeneveOptions{}).Overhead(); got != Overhead || Overhead != 44 {
		t.Errorf("Overhead %d, options-only overhead %d, want 44", Overhead, got)
	}
	all := GeneveOptions{HasEndpoint: true, HasTrace: true}
	if got := all.Overhead(); got > Headroom {
		t.Errorf("overhead with every option %d exceeds Headroom %d", got, Headroom)
	}
}

// geneveWith builds a Geneve header with raw option bytes.
func geneveWith(opts ...[]byte) Geneve {
	var o []byte
	for _, x := range opts {
		o = append(o, x...)
	}
	g := Geneve(append([]byte{byte(len(o) / 4), 0, 0x08, 0x00, 0, 0, 1, 0}, o...))
	return g
}

var (
	optSource    = []byte{0xff, 0xf0, 0x01, 1, 0, 0, 5, 0}
	optEndpoint  = []byte{0xff, 0xf0, 0x82, 2, 0, 0, 0, 0, 0, 0, 0, 9}
	optTrace     = []byte{0xff, 0xf0, 0x03, 1, 0, 0, 0, 3}
	optForeign   = []byte{0x01, 0x02, 0x03, 1, 1, 2, 3, 4} // another class, not critical
	optForeignCr = []byte{0x01, 0x02, 0x83, 1, 1, 2, 3, 4} // another class, critical
	optOursUnk   = []byte{0xff, 0xf0, 0x04, 0}             // ours, unknown, not critical
	optOursUnkCr = []byte{0xff, 0xf0, 0x84, 0}             // ours, unknown, critical
)

func TestParseGeneveOptions(t *testing.T) {
	tests := []struct {
		name string
		g    Geneve
		want GeneveOptions
		ok   bool
	}{
		{"source only", geneveWith(optSource), GeneveOptions{SourceVNI: 5}, true},
		{"all", geneveWith(optTrace, optEndpoint, optSource), GeneveOptions{SourceVNI: 5, HasEndpoint: true, EndpointID: 9, HasTrace: true, TraceID: 3}, true},
		{"foreign non-critical skipped", geneveWith(optForeign, optSource, optOursUnk), GeneveOptions{SourceVNI: 5}, true},
		{"no options", geneveWith(), GeneveOptions{}, false},
		{"source missing", geneveWith(optTrace), GeneveOptions{}, false},
		{"foreign critical", geneveWith(optSource, optForeignCr), GeneveOptions{}, false},
		{"ours unknown critical", geneveWith(optSource, optOursUnkCr), GeneveOptions{}, false},
		{"duplicate source", geneveWith(optSource, optSource), GeneveOptions{}, false},
		{"duplicate endpoint", geneveWith(optSource, optEndpoint, optEndpoint), GeneveOptions{}, false},
		{"source wrong length", geneveWith([]byte{0xff, 0xf0, 0x01, 2, 0, 0, 5, 0, 0, 0, 0, 0}), GeneveOptions{}, false},
		{"endpoint wrong length", geneveWith(optSource, []byte{0xff, 0xf0, 0x82, 1, 0, 0, 0, 0}), GeneveOptions{}, false},
		{"trace wrong length", geneveWith(optSource, []byte{0xff, 0xf0, 0x03, 0}), GeneveOptions{}, false},
		{"option overruns", geneveWith(optSource, []byte{0xff, 0xf0, 0x03, 2, 0, 0, 0, 0}), GeneveOptions{}, false},
		{"opt len past buffer", Geneve{0x02, 0, 0x08, 0, 0, 0, 1, 0, 0xff, 0xf0, 0x01, 1}, GeneveOptions{}, false},
		{"version 1", append(Geneve{0x42}, geneveWith(optSource)[1:]...), GeneveOptions{}, false},
		{"short", Geneve{0, 0, 0x08}, GeneveOptions{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseGeneveOptions(tt.g)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGeneveOptionIter(t *testing.T) {
	g := geneveWith(optForeignCr, optSource, optOursUnk)
	type opt struct {
		class    uint16
		typ      uint8
		critical bool
		data     string
	}
	var got []opt
	it := g.OptionIter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		got = append(got, opt{o.Class, o.Type, o.Critical(), string(o.Data)})
		if cap(o.Data) != len(o.Data) {
			t.Errorf("option data has spare capacity %d: an append would overwrite the next option", cap(o.Data)-len(o.Data))
		}
	}
	want := []opt{
		{0x0102, 0x83, true, "\x01\x02\x03\x04"},
		{0xfff0, 0x01, false, "\x00\x00\x05\x00"},
		{0xfff0, 0x04, false, ""},
	}
	if it.Malformed() || len(got) != len(want) {
		t.Fatalf("got %v (malformed %v), want %v", got, it.Malformed(), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("option %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Options area of 4 bytes holding a header that claims 4 more: stops, malformed.
	bad := Geneve{0x01, 0, 0x08, 0, 0, 0, 1, 0, 0xff, 0xf0, 0x01, 1}
	it = bad.OptionIter()
	if _, ok := it.Next(); ok || !it.Malformed() {
		t.Errorf("overrun: ok %v malformed %v", ok, it.Malformed())
	}
	if _, ok := it.Next(); ok {
		t.Error("Next after malformed returned an option")
	}
}
