#include "endpoint.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>

#include "common.h"

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

namespace {

// Parses a JS host string (IPv4, or IPv6 with an optional %scope) and port number into the endpoint
// record `rec` (IPv4 as IPv4-mapped; an unknown scope interface is the record's ENODEV). False with
// `why` set when they are not an address and a port in 0..65535.
bool ParseHost(napi_env env, napi_value host, napi_value port, uint8_t* rec, std::string* why) {
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
  if (!(pd >= 0 && pd <= 65535) || pd != static_cast<double>(static_cast<int>(pd))) {
    *why = "port is not an integer in 0..65535";
    return false;
  }
  const uint16_t nport = htons(static_cast<uint16_t>(pd));
  std::memset(rec, 0, kRecordLen);
  std::memcpy(rec + 16, &nport, 2);

  if (std::memchr(buf, ':', hl) == nullptr) {
    if (inet_pton(AF_INET, buf, rec + 12) != 1) {
      *why = "host is not an IP address";
      return false;
    }
    rec[10] = 0xff;
    rec[11] = 0xff;
    return true;
  }

  uint32_t scope = 0, err = 0;
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
      if (scope == 0) err = ENODEV;  // interface gone: a per-datagram error, not a bad string
    }
  }
  if (inet_pton(AF_INET6, buf, rec) != 1) {
    *why = "host is not an IP address";
    return false;
  }
  std::memcpy(rec + 20, &scope, 4);
  std::memcpy(rec + 44, &err, 4);
  return true;
}

// encodeEndpoint(host, port): the record of a configured endpoint (no local source).
Napi::Value EncodeEndpointJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) return ThrowType(env, "encodeEndpoint(host, port): missing arguments");
  Napi::Uint8Array rec = Napi::Uint8Array::New(env, kRecordLen);
  std::string why;
  if (!ParseHost(env, info[0], info[1], rec.Data(), &why)) {
    std::string shown = info[0].IsString() ? " ('" + info[0].As<Napi::String>().Utf8Value() + "')" : "";
    Napi::TypeError e = Napi::TypeError::New(env, "UDP endpoint: " + why + shown);
    e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ADDRESS"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return rec;
}

// endpointHost(record, offset = 0): the remote address of a record as text (see FormatAddr).
Napi::Value EndpointHostJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t len;
  if (info.Length() < 1 || !GetUint8Array(info[0], &data, &len)) {
    return ThrowType(env, "endpointHost(record: Uint8Array, offset?: number)");
  }
  size_t off = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  if (off > len || len - off < kRecordLen) return ThrowRange(env, "endpointHost: the record is out of range");
  Dest d;
  DecodeRecord(data + off, AF_INET6, &d);
  char text[kAddrTextLen];
  FormatAddr(d.ss, text, sizeof text);
  return Napi::String::New(env, text);
}

}  // namespace

void EncodeRecord(const sockaddr_storage& from, const Source* src, uint8_t* rec) {
  std::memset(rec, 0, kRecordLen);
  uint16_t flags = 0;
  if (from.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&from);
    rec[10] = 0xff;
    rec[11] = 0xff;
    std::memcpy(rec + 12, &sin->sin_addr, 4);
    std::memcpy(rec + 16, &sin->sin_port, 2);
  } else if (from.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&from);
    std::memcpy(rec, &sin6->sin6_addr, 16);
    std::memcpy(rec + 16, &sin6->sin6_port, 2);
    std::memcpy(rec + 20, &sin6->sin6_scope_id, 4);
  }
  if (src != nullptr) {
    flags |= kRecordHasSource;
    std::memcpy(rec + 24, &src->addr, 16);
    std::memcpy(rec + 40, &src->ifindex, 4);
  }
  std::memcpy(rec + 18, &flags, 2);
}

void DecodeRecord(const uint8_t* rec, int af, Dest* out) {
  std::memset(out, 0, sizeof *out);
  in6_addr a6;
  uint16_t nport, flags;
  uint32_t scope, err;
  std::memcpy(&a6, rec, 16);
  std::memcpy(&nport, rec + 16, 2);
  std::memcpy(&flags, rec + 18, 2);
  std::memcpy(&scope, rec + 20, 4);
  std::memcpy(&err, rec + 44, 4);
  out->err = static_cast<int>(err);
  if (nport == 0 && out->err == 0) out->err = EINVAL;  // port 0 cannot be sent to
  if (flags & kRecordHasSource) {
    out->has_src = true;
    std::memcpy(&out->src.addr, rec + 24, 16);
    std::memcpy(&out->src.ifindex, rec + 40, 4);
  }
  const bool mapped = IN6_IS_ADDR_V4MAPPED(&a6);
  if (af == AF_INET && mapped) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&out->ss);
    s4->sin_family = AF_INET;
    s4->sin_port = nport;
    std::memcpy(&s4->sin_addr, &a6.s6_addr[12], 4);
    out->len = sizeof(sockaddr_in);
    return;
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  s6->sin6_family = AF_INET6;
  s6->sin6_port = nport;
  s6->sin6_addr = a6;
  s6->sin6_scope_id = scope;
  out->len = sizeof(sockaddr_in6);
  if (af == AF_INET && out->err == 0) out->err = EAFNOSUPPORT;  // IPv6 on an IPv4-only socket
  if (out->has_src && mapped != IN6_IS_ADDR_V4MAPPED(&out->src.addr)) out->has_src = false;
}

bool SameSource(const Source& a, const Source& b) {
  return a.ifindex == b.ifindex && std::memcmp(&a.addr, &b.addr, sizeof a.addr) == 0;
}

void InitEndpoint(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeEndpoint", Napi::Function::New<EncodeEndpointJs>(env, "encodeEndpoint"));
  exports.Set("endpointHost", Napi::Function::New<EndpointHostJs>(env, "endpointHost"));
}

}  // namespace tsg
