//go:build !linux

package bgp

func md5Counters() (failure, notFound uint64, ok bool) { return 0, 0, false }
