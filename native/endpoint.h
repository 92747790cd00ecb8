// UDP endpoints in binary: the fixed-size record that carries a datagram's source up to JavaScript
// and a destination (with the local address to send from) back down, so that no address is turned
// into text or parsed on the per-packet path. Text only at the edges: parsing a configured
// "host" + port once, formatting a host for UAPI, logs and send errors.
#pragma once

#include <napi.h>

#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace tsg {

// An endpoint record, kRecordLen bytes (12 aligned 32-bit words):
//   0..15  remote address: IPv6, or IPv4 as ::ffff:a.b.c.d
//  16..17  remote port, network byte order
//  18..19  flags (host order): kRecordHasSource
//  20..23  IPv6 scope id (host order; 0 for global addresses and IPv4)
//  24..39  local address the datagram arrived on / is to be sent from (same form as the remote)
//  40..43  local interface index (host order)
//  44..47  errno when the endpoint cannot be used (ENODEV: its scope interface is gone), else 0
constexpr size_t kRecordLen = 48;
constexpr uint16_t kRecordHasSource = 1;

// The local address a datagram arrived on (IP_PKTINFO / IPV6_PKTINFO), kept to send replies from.
struct Source {
  in6_addr addr;  // ::ffff:a.b.c.d for IPv4
  uint32_t ifindex;
};

// A destination for a socket. `err` is non-zero when the address is valid but cannot be used on
// this socket (IPv6 on an IPv4-only socket: EAFNOSUPPORT, unknown scope interface: ENODEV); such
// datagrams are counted as errors. With `has_src`, the datagram leaves from `src`.
struct Dest {
  sockaddr_storage ss;
  socklen_t len;
  int err;
  bool has_src;
  Source src;
};

// Room for FormatAddr's text: an IPv6 address, '%' and an interface name.
constexpr size_t kAddrTextLen = INET6_ADDRSTRLEN + IF_NAMESIZE + 2;

// Formats the address of `ss` into `out` (no brackets; IPv4-mapped IPv6 as
// plain IPv4; a non-zero IPv6 scope id as "%ifname", or "%index" when the
// interface has no name any more). Returns the port.
int FormatAddr(const sockaddr_storage& ss, char* out, size_t outlen);

// Writes the record of a received datagram's source `from` and, when non-null, its local `src`.
void EncodeRecord(const sockaddr_storage& from, const Source* src, uint8_t* rec);

// Reads a record into a destination for a socket of family `af` (AF_INET6 dual-stack keeps IPv4 as
// IPv4-mapped; AF_INET takes IPv4 and marks IPv6 EAFNOSUPPORT).
void DecodeRecord(const uint8_t* rec, int af, Dest* out);

// Whether two sources are the same address and interface.
bool SameSource(const Source& a, const Source& b);

// Registers encodeEndpoint(host, port) and endpointHost(record) on `exports`.
void InitEndpoint(Napi::Env env, Napi::Object exports);

}  // namespace tsg
