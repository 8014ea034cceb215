package fastpath

// The BPF objects are generated and committed, so `go build` needs no
// clang; .ci/run regenerates them and fails if they differ.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type egress_key -type egress_entry -type ingress_key -type ingress_entry fastpath bpf/fastpath.c
