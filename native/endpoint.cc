#include "endpoint.h"

#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>

namespace tsg {

// Formats the address of `ss` into `out` (no brackets; IPv4-mapped IPv6 as
// plain IPv4; a non-zero IPv6 scope id as "%ifname", or "%index" when the
// interface has no name any more). Returns the port.
int FormatAddr(const sockaddr_storage& ss, char* out, size_t outlen) {
  out[0] = '\0';
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, out, static_cast<socklen_t>(outlen));
    return ntohs(sin->sin_port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out, static_cast<socklen_t>(outlen));
    } else {
      inet_ntop(AF_INET6, &sin6->sin6_addr, out, static_cast<socklen_t>(outlen));
      if (sin6->sin6_scope_id != 0) {
        size_t l = std::strlen(out);
        char ifname[IF_NAMESIZE];
        if (if_indextoname(sin6->sin6_scope_id, ifname) != nullptr) {
          snprintf(out + l, outlen - l, "%%%s", ifname);
        } else {
          snprintf(out + l, outlen - l, "%%%u", sin6->sin6_scope_id);
        }
      }
    }
    return ntohs(sin6->sin6_port);
  }
  return 0;
}

bool SameAddr(const sockaddr_storage& a, socklen_t alen, const sockaddr_storage& b, socklen_t blen) {
  return alen == blen && std::memcmp(&a, &b, alen) == 0;
}

bool ParseDest(napi_env env, napi_value host, napi_value port, int af, Dest* out, std::string* why) {
  napi_valuetype t;
  if (napi_typeof(env, host, &t) != napi_ok || t != napi_string) {
    *why = "host is not a string";
    return false;
  }
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 8];
  size_t hl = 0;
  if (napi_get_value_string_utf8(env, host, buf, sizeof buf, &hl) != napi_ok) {
    *why = "host is not a string";
    return false;
  }
  if (hl >= sizeof buf - 1) {
    *why = "host is not an IP address";
    return false;
  }
  if (napi_typeof(env, port, &t) != napi_ok || t != napi_number) {
    *why = "port is not a number";
    return false;
  }
  double pd;
  napi_get_value_double(env, port, &pd);
  if (!(pd >= 1 && pd <= 65535) || pd != static_cast<double>(static_cast<int>(pd))) {
    *why = "port is not an integer in 1..65535";
    return false;
  }
  uint16_t nport = htons(static_cast<uint16_t>(pd));
  std::memset(&out->ss, 0, sizeof out->ss);
  out->err = 0;

  if (std::memchr(buf, ':', hl) == nullptr) {
    in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) != 1) {
      *why = "host is not an IP address";
      return false;
    }
    if (af == AF_INET6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = nport;
      s6->sin6_addr.s6_addr[10] = 0xff;
      s6->sin6_addr.s6_addr[11] = 0xff;
      std::memcpy(&s6->sin6_addr.s6_addr[12], &a4, 4);
      out->len = sizeof(sockaddr_in6);
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&out->ss);
      s4->sin_family = AF_INET;
      s4->sin_port = nport;
      s4->sin_addr = a4;
      out->len = sizeof(sockaddr_in);
    }
    return true;
  }

  uint32_t scope = 0;
  char* pct = static_cast<char*>(std::memchr(buf, '%', hl));
  if (pct != nullptr) {
    *pct = '\0';
    const char* sc = pct + 1;
    if (*sc == '\0') {
      *why = "host has an empty IPv6 scope id";
      return false;
    }
    bool numeric = true;
    for (const char* c = sc; *c != '\0'; c++) numeric = numeric && *c >= '0' && *c <= '9';
    if (numeric) {
      unsigned long v = std::strtoul(sc, nullptr, 10);
      if (v == 0 || v > 0xffffffffUL) {
        *why = "host has an invalid IPv6 scope id";
        return false;
      }
      scope = static_cast<uint32_t>(v);
    } else {
      if (std::strlen(sc) >= IF_NAMESIZE) {
        *why = "host has an invalid IPv6 scope id";
        return false;
      }
      scope = if_nametoindex(sc);
      if (scope == 0) out->err = ENODEV;  // interface gone: a per-datagram error, not a bad string
    }
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, buf, &a6) != 1) {
    *why = "host is not an IP address";
    return false;
  }
  if (af == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = nport;
    s6->sin6_addr = a6;
    s6->sin6_scope_id = scope;
    out->len = sizeof(sockaddr_in6);
  } else if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&out->ss);
    s4->sin_family = AF_INET;
    s4->sin_port = nport;
    std::memcpy(&s4->sin_addr, &a6.s6_addr[12], 4);
    out->len = sizeof(sockaddr_in);
  } else {
    // A valid IPv6 destination on an IPv4-only socket.
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = nport;
    s6->sin6_addr = a6;
    out->len = sizeof(sockaddr_in6);
    out->err = EAFNOSUPPORT;
  }
  return true;
}

}  // namespace tsg
