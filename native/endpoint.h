// UDP endpoints between JavaScript text and sockaddr: parsing "host" + port for sends, formatting
// the source of received datagrams.
#pragma once

#include <napi.h>

#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace tsg {

// A parsed destination. `err` is non-zero when the address is valid but cannot be used on this
// socket (IPv6 on an IPv4-only socket: EAFNOSUPPORT, unknown scope interface: ENODEV); such
// datagrams are counted as errors.
struct Dest {
  sockaddr_storage ss;
  socklen_t len;
  int err;
};

// Room for FormatAddr's text: an IPv6 address, '%' and an interface name.
constexpr size_t kAddrTextLen = INET6_ADDRSTRLEN + IF_NAMESIZE + 2;

// Formats the address of `ss` into `out` (no brackets; IPv4-mapped IPv6 as
// plain IPv4; a non-zero IPv6 scope id as "%ifname", or "%index" when the
// interface has no name any more). Returns the port.
int FormatAddr(const sockaddr_storage& ss, char* out, size_t outlen);

// Same family, address and port (byte-equal sockaddrs).
bool SameAddr(const sockaddr_storage& a, socklen_t alen, const sockaddr_storage& b, socklen_t blen);

// Parses a JS host string (IPv4, or IPv6 with an optional %scope) and port number into `out` for a
// socket of family `af` (AF_INET6 dual-stack: IPv4 becomes IPv4-mapped). False with `why` set when
// they are not an address and a port in 1..65535.
bool ParseDest(napi_env env, napi_value host, napi_value port, int af, Dest* out, std::string* why);

}  // namespace tsg
