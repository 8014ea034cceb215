// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The openvpc fast path: an exact-match flow cache that replays decisions
// the Go story (host/dataplane) made. Nothing here decides anything: a
// packet either matches an entry the agent installed for the current
// snapshot generation, and gets what the entry says, or it passes on to
// the agent unchanged. See host/fastpath/doc.go.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// TCX verdicts (linux/bpf.h of this machine's headers may predate them).
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2
#define TCX_REDIRECT 7

// BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (kernel 6.3; TCX needs 6.6 anyway), newer
// than this machine's headers. The kernel here has no flag yet to undo a
// super-packet's UDP-tunnel GSO type on decapsulation: a decapsulated
// super-packet keeps it, which the instance's own stack ignores (it only
// matters to an instance that forwards such packets on).
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4_ (1ULL << 7)

#define GENEVE_LEN 16 // base header + the SourceVPC option
#define ENCAP_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + GENEVE_LEN)

enum action {
	ACT_ENCAP = 1,   // encapsulate and send to the underlay device
	ACT_DELIVER = 2, // deliver to a local instance's veth
};

// Counters, per CPU; the agent merges them into its own (fastpath.go
// names the same indices).
enum counter {
	C_EGRESS_FORWARDED,
	C_EGRESS_DELIVERED,
	C_INGRESS_DELIVERED,
	C_EGRESS_MISS,
	C_INGRESS_MISS,
	C_STALE,
	C_EXPIRED,
	C_BYPASS,
	C_MAX,
};

struct egress_key {
	__u32 ifindex; // the host end of the sender's veth: which ENI sent it
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u8 proto;
	__u8 pad[3];
};

struct egress_entry {
	__u64 gen;     // the snapshot generation it was decided on
	__u64 expires; // bpf_ktime_get_ns after which the Go story decides again
	__u64 packets, bytes;
	__u32 action;
	__u32 ifindex; // ACT_ENCAP: the underlay device; ACT_DELIVER: the receiver's host veth end
	__u32 outer_src, outer_dst;
	__u16 src_port, dst_port; // network order
	__u16 mtu;                // largest inner packet replayed; larger ones take the Go story
	__u8 dec_ttl;             // the packet crosses the VPC router
	__u8 pad;
	__u8 geneve[GENEVE_LEN];
	__u8 dmac[6], smac[6];
};

struct ingress_key {
	__u32 outer_src;
	__u32 vni, svni;
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u8 proto;
	__u8 pad[3];
};

struct ingress_entry {
	__u64 gen, expires;
	__u64 packets, bytes;
	__u32 ifindex;   // the receiver's host veth end
	__u32 outer_dst; // this host's underlay address
	__u16 dst_port;  // the wire port, network order
	__u16 pad;
	__u8 geneve[GENEVE_LEN]; // the exact Geneve header the Go story accepted
	__u8 dmac[6], smac[6];
};

// generation[0] is the generation of the snapshot in force; [1] that of
// the snapshot about to be published, while the agent re-decides entries
// with it (equal to [0] otherwise). An entry stamped with [1] was decided
// the same by both snapshots, so it may be replayed under either.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} generation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct egress_key);
	__type(value, struct egress_entry);
} egress_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ingress_key);
	__type(value, struct ingress_entry);
} ingress_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

// current reports whether an entry decided on generation gen may be
// replayed for this packet. An entry of an older snapshot never is. An
// entry past its expiry sends this one packet to the Go story, which
// decides it again (connection tracking sees the flow) and installs the
// entry afresh or removes it; meanwhile the next second of packets is
// still replayed, so a flow is not reordered through the slow path.
static __always_inline int current(__u64 gen, __u64 *expires)
{
	__u32 zero = 0, one = 1;
	__u64 *g = bpf_map_lookup_elem(&generation, &zero), *next = bpf_map_lookup_elem(&generation, &one);
	if (!g || !next || (*g != gen && *next != gen)) {
		count(C_STALE);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	if (now > *expires) {
		*expires = now + 1000000000ULL;
		count(C_EXPIRED);
		return 0;
	}
	return 1;
}

// ports reads the L4 ports of a TCP or UDP packet at l4; a TCP segment
// with SYN, FIN or RST always takes the Go story (connection tracking sees
// every change of state). Returns 0 when the packet must take it.
static __always_inline int ports(void *l4, void *end, __u8 proto, __u16 *sport, __u16 *dport)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *t = l4;
		if ((void *)(t + 1) > end)
			return 0;
		if (t->syn || t->fin || t->rst)
			return 0;
		*sport = t->source;
		*dport = t->dest;
		return 1;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *u = l4;
		if ((void *)(u + 1) > end)
			return 0;
		*sport = u->source;
		*dport = u->dest;
		return 1;
	}
	return 0;
}

// l4_len is the length of the TCP or UDP header at l4 (ports checked it is there).
static __always_inline __u32 l4_len(void *l4, void *end, __u8 proto)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *t = l4;
		if ((void *)(t + 1) > end)
			return 0xffff;
		return t->doff * 4;
	}
	return sizeof(struct udphdr);
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

struct outer {
	struct iphdr ip;
	struct udphdr udp;
	__u8 geneve[GENEVE_LEN];
};
_Static_assert(sizeof(struct outer) == ENCAP_LEN, "outer headers are 44 bytes");

// from_instance runs on the host end of an instance's veth (TCX ingress):
// the instance's packets, egress in the Go story's terms.
SEC("tc")
int from_instance(struct __sk_buff *skb)
{
	const __u32 need = sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (data + need > end) {
		bpf_skb_pull_data(skb, need); // headers in the linear part, when the packet has them
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto bypass;
	if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		goto bypass;
	struct egress_key k = {.ifindex = skb->ingress_ifindex, .saddr = ip->saddr, .daddr = ip->daddr, .proto = ip->protocol};
	if (!ports(ip + 1, end, ip->protocol, &k.sport, &k.dport))
		goto bypass;
	struct egress_entry *e = bpf_map_lookup_elem(&egress_flows, &k);
	if (!e) {
		count(C_EGRESS_MISS);
		return TCX_PASS;
	}
	if (!current(e->gen, &e->expires))
		return TCX_PASS;
	__u16 len = bpf_ntohs(ip->tot_len);
	if (skb->len != len + sizeof(struct ethhdr) || len > 0xffff - ENCAP_LEN)
		goto bypass; // padded frames, no room for the outer headers: the Go story
	// MTU cases take the Go story. A super-packet (TSO) is cut into
	// segments of gso_size payload bytes after these headers.
	if (skb->gso_size ? skb->gso_size + sizeof(struct iphdr) + l4_len(ip + 1, end, ip->protocol) > e->mtu : len > e->mtu)
		goto bypass;
	if (e->dec_ttl) {
		if (ip->ttl <= 1)
			goto bypass; // time exceeded: the Go story answers
		__u16 old = *(__u16 *)&ip->ttl, new;
		ip->ttl--;
		new = *(__u16 *)&ip->ttl;
		bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + __builtin_offsetof(struct iphdr, check), old, new, 2);
	}
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);

	if (e->action == ACT_DELIVER) {
		__u8 macs[12];
		__builtin_memcpy(macs, e->dmac, 6);
		__builtin_memcpy(macs + 6, e->smac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, 12, 0))
			return TCX_DROP;
		count(C_EGRESS_DELIVERED);
		return bpf_redirect_peer(e->ifindex, 0);
	}
	if (e->action != ACT_ENCAP)
		goto bypass;

	struct outer o = {};
	o.ip.version = 4;
	o.ip.ihl = 5;
	o.ip.tot_len = bpf_htons(len + ENCAP_LEN);
	o.ip.frag_off = bpf_htons(0x4000); // DF, as the Go path's socket sends
	o.ip.ttl = 64;
	o.ip.protocol = IPPROTO_UDP;
	o.ip.saddr = e->outer_src;
	o.ip.daddr = e->outer_dst;
	o.ip.check = fold(bpf_csum_diff(0, 0, (__be32 *)&o.ip, sizeof(o.ip), 0));
	o.udp.source = e->src_port;
	o.udp.dest = e->dst_port;
	o.udp.len = bpf_htons(len + sizeof(struct udphdr) + GENEVE_LEN);
	__builtin_memcpy(o.geneve, e->geneve, GENEVE_LEN);
	__u8 macs[12];
	__builtin_memcpy(macs, e->dmac, 6);
	__builtin_memcpy(macs + 6, e->smac, 6);
	__u32 ifindex = e->ifindex;

	// FIXED_GSO: the instance MTU already leaves room for the outer
	// headers, so a super-packet's segments keep their size.
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2(GENEVE_LEN) | BPF_F_ADJ_ROOM_FIXED_GSO;
	if (bpf_skb_adjust_room(skb, ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags))
		return TCX_DROP;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &o, sizeof(o), 0))
		return TCX_DROP;
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0))
		return TCX_DROP;
	count(C_EGRESS_FORWARDED);
	return bpf_redirect(ifindex, 0);

bypass:
	count(C_BYPASS);
	return TCX_PASS;
}

// from_wire runs on the underlay device (TCX ingress): Geneve from other
// hosts, ingress in the Go story's terms.
SEC("tc")
int from_wire(struct __sk_buff *skb)
{
	const __u32 need = sizeof(struct ethhdr) + ENCAP_LEN + sizeof(struct iphdr) + sizeof(struct tcphdr);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (data + need > end) {
		bpf_skb_pull_data(skb, need); // headers in the linear part, when the packet has them
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TCX_PASS;
	if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)))
		return TCX_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *g = (void *)(udp + 1);
	struct iphdr *in = (void *)(g + GENEVE_LEN);
	if ((void *)(in + 1) > end)
		return TCX_PASS;
	// Only SourceVPC alone (options length 2 words): a traced packet, an
	// endpoint's or an edge's takes the Go story.
	if (g[0] != 2 || g[1] != 0 || in->version != 4 || in->ihl != 5 || (in->frag_off & bpf_htons(0x3fff)))
		return TCX_PASS;
	struct ingress_key k = {.outer_src = ip->saddr, .saddr = in->saddr, .daddr = in->daddr, .proto = in->protocol};
	k.vni = (__u32)g[4] << 16 | (__u32)g[5] << 8 | g[6];
	k.svni = (__u32)g[12] << 16 | (__u32)g[13] << 8 | g[14];
	if (!ports(in + 1, end, in->protocol, &k.sport, &k.dport))
		return TCX_PASS;
	struct ingress_entry *e = bpf_map_lookup_elem(&ingress_flows, &k);
	if (!e) {
		count(C_INGRESS_MISS);
		return TCX_PASS;
	}
	if (!current(e->gen, &e->expires))
		return TCX_PASS;
	// The entry was decided for exactly this outer destination, port and
	// Geneve header; anything else is not what the Go story accepted.
	if (ip->daddr != e->outer_dst || udp->dest != e->dst_port ||
	    *(__u64 *)g != *(__u64 *)e->geneve || *(__u64 *)(g + 8) != *(__u64 *)(e->geneve + 8))
		return TCX_PASS;
	__u16 len = bpf_ntohs(in->tot_len);
	if (bpf_ntohs(ip->tot_len) != len + ENCAP_LEN || skb->len != len + ENCAP_LEN + sizeof(struct ethhdr))
		return TCX_PASS;
	// A damaged outer header is the kernel's to drop, as it would before
	// the agent's socket: the sum over a valid header folds to zero.
	if (fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0)) != 0)
		return TCX_PASS;
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	__u8 macs[12];
	__builtin_memcpy(macs, e->dmac, 6);
	__builtin_memcpy(macs + 6, e->smac, 6);
	__u32 ifindex = e->ifindex;
	// Decapsulate, keeping a super-packet's segment size.
	if (bpf_skb_adjust_room(skb, -(__s32)ENCAP_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4_))
		return TCX_DROP;
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0))
		return TCX_DROP;
	count(C_INGRESS_DELIVERED);
	return bpf_redirect_peer(ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
