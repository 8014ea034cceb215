package vpceproxy

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

var origin = Origin{
	Source:   netip.MustParseAddrPort("10.0.1.5:40000"),
	Dest:     netip.MustParseAddrPort("198.51.100.10:80"),
	Endpoint: "vpce-0123456789abcdef",
	VPC:      "vpc-00000000000000aa",
}

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, origin); err != nil {
		t.Fatal(err)
	}
	b.WriteString("GET / HTTP/1.1\r\n")
	r := bufio.NewReader(&b)
	got, err := Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != origin {
		t.Fatalf("got %+v, want %+v", got, origin)
	}
	rest, _ := r.ReadString('\n')
	if rest != "GET / HTTP/1.1\r\n" {
		t.Fatalf("the bytes after the header are %q", rest)
	}
}

// TestAWSLayout: the endpoint TLV is byte for byte what AWS sends, so a
// service written for AWS's PrivateLink header reads ours.
func TestAWSLayout(t *testing.T) {
	var b bytes.Buffer
	o := origin
	o.VPC = ""
	if err := Write(&b, o); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0xea, 0x00, byte(1 + len(o.Endpoint)), 0x01}, o.Endpoint...)
	raw := b.Bytes()
	if !bytes.HasSuffix(raw, want) {
		t.Fatalf("header % x does not end with the AWS TLV % x", raw, want)
	}
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if !bytes.HasPrefix(raw, sig) || raw[12] != 0x21 || raw[13] != 0x11 {
		t.Fatalf("not a v2 PROXY TCPv4 header: % x", raw[:16])
	}
	// Source 10.0.1.5, destination 198.51.100.10, ports 40000 and 80.
	if !bytes.Equal(raw[16:28], []byte{10, 0, 1, 5, 198, 51, 100, 10, 0x9c, 0x40, 0, 80}) {
		t.Fatalf("addresses % x", raw[16:28])
	}
}

func TestRefuses(t *testing.T) {
	bad := []Origin{
		{Source: origin.Source, Dest: origin.Dest, Endpoint: "vpc-1"},
		{Source: origin.Source, Dest: origin.Dest, Endpoint: "vpce-"},
		{Source: origin.Source, Dest: origin.Dest, Endpoint: "vpce-AB"},
		{Source: origin.Source, Dest: origin.Dest, Endpoint: "vpce-1", VPC: "vpce-2"},
		{Source: netip.MustParseAddrPort("[::1]:1"), Dest: origin.Dest, Endpoint: "vpce-1"},
	}
	for _, o := range bad {
		if err := Write(new(bytes.Buffer), o); !errors.Is(err, ErrHeader) {
			t.Errorf("Write(%+v) = %v, want ErrHeader", o, err)
		}
	}
	for _, in := range []string{"GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ""} {
		if _, err := Read(bufio.NewReader(bytes.NewBufferString(in))); !errors.Is(err, ErrHeader) {
			t.Errorf("Read(%q) = %v, want ErrHeader", in, err)
		}
	}
	// A v2 header without the endpoint TLV: a proxy, but not a service node.
	var b bytes.Buffer
	h, _ := Header(origin)
	_ = h.SetTLVs(nil)
	_, _ = h.WriteTo(&b)
	if _, err := Read(bufio.NewReader(&b)); !errors.Is(err, ErrHeader) {
		t.Errorf("a header without the endpoint TLV: %v", err)
	}
}

// FuzzRead: any bytes either read as an Origin that writes back to the
// same Origin, or are refused with ErrHeader.
func FuzzRead(f *testing.F) {
	var b bytes.Buffer
	_ = Write(&b, origin)
	f.Add(b.Bytes())
	f.Add([]byte("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x01\x00\x02"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := Read(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			return
		}
		var b bytes.Buffer
		if err := Write(&b, o); err != nil {
			t.Fatalf("read %+v but cannot write it: %v", o, err)
		}
		o2, err := Read(bufio.NewReader(&b))
		if err != nil || o2 != o {
			t.Fatalf("round trip %+v → %+v, %v", o, o2, err)
		}
	})
}
