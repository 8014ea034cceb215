package packet

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the 16-bit ones'-complement sum (RFC 1071) of b added to initial, without
// the final complement. Leaving the complement out lets sums of pieces chain: Checksum(b2,
// Checksum(b1, 0)) covers b1 followed by b2, provided b1 has an even length. The value that
// goes in a checksum field is the complement of the total; see InternetChecksum.
//
// The result is 0 only if b is all zeros and initial is 0.
func Checksum(b []byte, initial uint16) uint16 {
	return fold(sum(b, uint64(initial)))
}

// InternetChecksum returns the value of a checksum field covering b: the complement of the
// ones'-complement sum. Summing b again with this value in place gives 0xffff.
func InternetChecksum(b []byte) uint16 {
	return ^Checksum(b, 0)
}

// ChecksumCombine adds two ones'-complement sums, as returned by Checksum.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderChecksum returns the sum (not complemented) of the IPv4 pseudo-header that
// TCP and UDP checksums cover (RFC 793, RFC 768): addresses, protocol and segment length.
// Pass it as the initial value of Checksum over the segment.
func PseudoHeaderChecksum(proto uint8, src, dst [4]byte, length uint16) uint16 {
	s := uint64(binary.BigEndian.Uint32(src[:])) +
		uint64(binary.BigEndian.Uint32(dst[:])) +
		uint64(proto) + uint64(length)
	return fold(s)
}

// ChecksumUpdate16 returns checksum field check after a 16-bit word of the data it covers
// changed from old to new, per RFC 1624 equation 3: HC' = ~(~HC + ~m + m'). Unlike the
// older RFC 1141 form, it gives exactly what a recomputation would, so a NAT can rewrite a
// port or an ICMP identifier without reading the rest of the packet.
//
// For UDP, a zero field means "no checksum" and must be left alone, and a result of zero
// must be sent as 0xffff; UDP.UpdateChecksum does both.
func ChecksumUpdate16(check, old, new uint16) uint16 {
	return ^fold(uint64(^check) + uint64(^old) + uint64(new))
}

// ChecksumUpdateAddr is ChecksumUpdate16 for an IPv4 address (two words) that changed from
// old to new: in the IPv4 header checksum, and in TCP and UDP checksums through the
// pseudo-header.
func ChecksumUpdateAddr(check uint16, old, new [4]byte) uint16 {
	return ^fold(uint64(^check) +
		uint64(^binary.BigEndian.Uint32(old[:])) +
		uint64(binary.BigEndian.Uint32(new[:])))
}

// sum adds b to acc as big-endian words with end-around carry. It reads 8 bytes at a time:
// a ones'-complement sum of 64-bit words folds to the same 16-bit sum as one of 16-bit words
// (RFC 1071 §2), because 2^16-1 divides 2^64-1. The last 0–31 bytes, which are all of an
// IPv4 header, are added as 32-bit words to a 64-bit total that cannot overflow, so they
// need no carry chain.
func sum(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	var tail uint64
	for len(b) >= 4 {
		tail += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		// An odd last byte is the high half of a word padded with zero.
		tail += uint64(b[0]) << 8
	}
	acc, c = bits.Add64(acc, tail, c)
	return acc + c // cannot overflow: a carry leaves acc <= 2^64-2
}

// fold reduces a 64-bit ones'-complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff // < 2^33
	s = s>>16 + s&0xffff     // < 2^17 + 2^16
	s = s>>16 + s&0xffff     // <= 0x10001
	s = s>>16 + s&0xffff     // <= 0xffff
	return uint16(s)
}
