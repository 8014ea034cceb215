package bgp

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// md5Counters reads the kernel's TCP MD5 counters of the calling
// process's network namespace (the session's, for a speaker child):
// Failure counts segments with a wrong signature, NotFound segments
// without one where a key is set. A wrong key never shows in BGP (the
// kernel drops the SYN), only here.
func md5Counters() (failure, notFound uint64, ok bool) {
	f, err := os.Open("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		names := strings.Fields(s.Text())
		if !s.Scan() {
			break
		}
		values := strings.Fields(s.Text())
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for i, n := range names {
			v, _ := strconv.ParseUint(values[i], 10, 64)
			switch n {
			case "TCPMD5Failure":
				failure, ok = v, true
			case "TCPMD5NotFound":
				notFound = v
			}
		}
	}
	return failure, notFound, ok
}
