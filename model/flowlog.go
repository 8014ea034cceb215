package model

import (
	"path/filepath"
	"strings"
	"time"
)

// Flow log aggregation windows: AWS's default, and the bounds openvpc
// accepts (AWS offers 60 s and 600 s; shorter windows are for tests).
const (
	DefaultFlowLogInterval = 60 * time.Second
	MinFlowLogInterval     = time.Second
	MaxFlowLogInterval     = 10 * time.Minute
)

// FlowLogFilePrefix is the scheme of the one destination hosts write to.
const FlowLogFilePrefix = "file:"

// ParseFlowLogDestination reads a flow log's destination, file:PATH with
// an absolute path, and returns the cleaned path.
func ParseFlowLogDestination(dest string) (string, error) {
	if dest == "" {
		return "", Invalidf("a flow log needs a destination: --destination file:/absolute/path")
	}
	path, ok := strings.CutPrefix(dest, FlowLogFilePrefix)
	if !ok {
		return "", Invalidf("destination %q: only files are supported; write file:/absolute/path", dest)
	}
	if strings.ContainsFunc(path, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", Invalidf("destination %q: the path has control characters", dest)
	}
	if !filepath.IsAbs(path) {
		return "", Invalidf("destination %q: the path must be absolute (file:/var/log/openvpc/flows.log); each host writes it on its own file system", dest)
	}
	return filepath.Clean(path), nil
}

// CheckFlowLogInterval checks an aggregation window in seconds; 0 means
// the default.
func CheckFlowLogInterval(seconds uint32) (uint32, error) {
	if seconds == 0 {
		return uint32(DefaultFlowLogInterval / time.Second), nil
	}
	d := time.Duration(seconds) * time.Second
	if d < MinFlowLogInterval || d > MaxFlowLogInterval {
		return 0, Invalidf("aggregation interval %ds: use 1s to 10m (default 60s)", seconds)
	}
	return seconds, nil
}
