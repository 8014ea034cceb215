package model

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlowLogDestinationAndInterval(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"file:/var/log/flows.log", "/var/log/flows.log", ""},
		{"file:/var/log/../tmp//x.log", "/var/tmp/x.log", ""},
		{"", "", "--destination file:"},
		{"/var/log/x", "", "only files"},
		{"s3://bucket/prefix", "", "only files"},
		{"file:x.log", "", "must be absolute"},
		{"file:/tmp/a\nb", "", "control characters"},
	} {
		got, err := ParseFlowLogDestination(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("ParseFlowLogDestination(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseFlowLogDestination(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
	for in, want := range map[uint32]uint32{0: 60, 1: 1, 60: 60, 600: 600} {
		if got, err := CheckFlowLogInterval(in); err != nil || got != want {
			t.Errorf("CheckFlowLogInterval(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []uint32{601, 3600, 1 << 31} {
		if _, err := CheckFlowLogInterval(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckFlowLogInterval(%d) = %v; want invalid", in, err)
		}
	}
}

// FuzzFlowLogDestination: a destination is refused as invalid input, or
// is an absolute, clean path without control characters that reads back
// as itself.
func FuzzFlowLogDestination(f *testing.F) {
	for _, s := range []string{"file:/var/log/x", "file:rel", "s3://b", "file:/a/../../b", "file:/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dest string) {
		path, err := ParseFlowLogDestination(dest)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path || strings.ContainsAny(path, "\x00\n\r") {
			t.Fatalf("%q accepted as path %q", dest, path)
		}
		if again, err := ParseFlowLogDestination(FlowLogFilePrefix + path); err != nil || again != path {
			t.Fatalf("%q reads back as %q, %v", path, again, err)
		}
	})
}
