// TUN offloads as pure functions over buffers (no syscalls, no N-API): splitting the GSO
// super-packets a TUN with IFF_VNET_HDR hands us into MTU-sized packets, and coalescing the packets
// of one write batch per flow into few large ones under the kernel's GRO rules, so that either side
// of the TUN walks its stack once per batch instead of once per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tsg {
namespace offload {

// struct virtio_net_hdr (linux/virtio_net.h), host byte order: the 10 bytes before every packet read
// from or written to a TUN opened with IFF_VNET_HDR.
struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};
constexpr size_t kVnetHdrLen = 10;
constexpr uint8_t kNeedsCsum = 1;   // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0;     // VIRTIO_NET_HDR_GSO_NONE
constexpr uint8_t kGsoTcpV4 = 1;    // VIRTIO_NET_HDR_GSO_TCPV4
constexpr uint8_t kGsoTcpV6 = 4;    // VIRTIO_NET_HDR_GSO_TCPV6
constexpr uint8_t kGsoUdpL4 = 5;    // VIRTIO_NET_HDR_GSO_UDP_L4
constexpr uint8_t kGsoEcn = 0x80;   // VIRTIO_NET_HDR_GSO_ECN
// Packets merged into one at most (the kernel's GRO stops at 64 segments too).
constexpr uint32_t kMaxCoalesce = 64;

VnetHdr DecodeVnetHdr(const uint8_t* p);
void EncodeVnetHdr(const VnetHdr& h, uint8_t* p);

// The Internet checksum's 16-bit one's-complement sum of `len` bytes (big-endian words; an odd last
// byte is the high half of a word), added to `initial`; not folded.
uint64_t SumBytes(const uint8_t* p, size_t len, uint64_t initial = 0);
// Folds a sum to 16 bits (not complemented).
uint16_t Fold(uint64_t sum);
// The pseudo-header sum of an IPv4 (version 4) or IPv6 packet `ip` for protocol `proto` and an L4
// length of `l4_len`, unfolded.
uint64_t PseudoHeaderSum(const uint8_t* ip, uint8_t proto, uint32_t l4_len);

// Result of GsoSplit.
enum class SplitResult {
  kSplit,     // segments appended to `out` (also for a GSO_NONE packet, as one segment)
  kMalformed, // the header does not describe this packet: drop it
};

// Splits one packet read from the TUN (`pkt`, after its virtio_net_hdr `h`) into the packets it
// stands for, each appended to `out` with its length in `lens`: a GSO_NONE packet as it is, with
// its checksum finished when NEEDS_CSUM is set (the field holds the pseudo-header sum); a TCP or
// UDP super-packet cut into gso_size payloads with per-segment IPv4 id / total length / header
// checksum or IPv6 payload length, TCP sequence number (FIN and PSH on the last segment only, CWR
// on the first), UDP length, and a full L4 checksum. The header length is derived from csum_start
// and the TCP data offset, never taken from hdr_len.
SplitResult GsoSplit(const VnetHdr& h, const uint8_t* pkt, size_t len, std::vector<uint8_t>* out,
                     std::vector<uint32_t>* lens);

// One write() to the TUN as planned by Coalesce: the packet `first` alone (count == 1, all-zero
// virtio_net_hdr), or `first` followed by count - 1 more packets of its flow (their indices are
// next[] links starting at first) written as one super-packet: `hdr` and the patched copy of the
// first packet's IP and L4 headers in `head`, then every member's payload.
struct WriteUnit {
  uint32_t first = 0;
  uint32_t last = 0;
  uint32_t count = 1;
  VnetHdr hdr;
  uint8_t head[120];  // IPv4 ≤ 20 (no options) or IPv6 40, + TCP ≤ 60 or UDP 8
  uint16_t head_len = 0;
  uint32_t total = 0;  // bytes of the merged IP packet (head + all payloads)
  // Coalescing state while planning.
  uint32_t next_seq = 0;  // TCP: sequence number expected next
  uint16_t gso_size = 0;  // payload bytes of the first member
  uint16_t last_id = 0;   // IPv4 id of the last member
  bool closed = false;
  uint8_t proto = 0;      // 6 TCP, 17 UDP, 0: not coalescable
};

// Plans the writes for `n` packets (`data[i]`, `len[i]`, plain IP packets) under the kernel's GRO
// rules: same addresses and ports, TCP with adjacent sequence numbers, the same ACK number and TCP
// options, ACK or ACK|PSH only (PSH ends a run), UDP (only when `udp`) with equal lengths; equal
// TTL/hop limit and TOS/traffic class (and IPv6 flow label), consecutive IPv4 ids, no IPv4 options
// or fragments, no IPv6 extension headers, valid checksums; a shorter payload only last; at most
// 64 packets and 65,535 bytes. Packets that do not qualify are written alone. `next` gets the member
// links (size n). Units come out in the order of their first packet, so each flow keeps its order.
void Coalesce(const uint8_t* const* data, const size_t* len, uint32_t n, bool udp, std::vector<WriteUnit>* units,
              std::vector<uint32_t>* next);

// Payload offset of packet `data` (member of a coalesced unit of protocol `proto`): IP + L4 header.
size_t PayloadOffset(const uint8_t* data, uint8_t proto);

}  // namespace offload
}  // namespace tsg
