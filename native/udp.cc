#include "udp.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h, Linux ≥ 4.18
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace tsg {

namespace {

constexpr unsigned kBatch = 64;               // datagrams per recvmmsg / JS callback
constexpr int kMaxBatchesPerWake = 8;         // then yield to the loop (level-triggered)
constexpr size_t kSlot = 65536;               // > largest UDP payload (65507 / 65527)
constexpr unsigned kMaxSendChunk = 1024;      // UIO_MAXIOV: sendmmsg's vlen limit
constexpr size_t kMaxQueue = 1024;            // datagrams kept while the socket is full
constexpr size_t kMaxPendingErrors = 64;      // send errors kept for the JS callback
constexpr uint32_t kMaxGsoSegments = 64;      // datagrams per UDP GSO message (the kernel's UDP_MAX_SEGMENTS is 64 or more)
constexpr size_t kMaxGsoBytes = 65000;        // payload bytes per UDP GSO message (< 64 KiB with headers)
// Socket buffer sizes. The receive buffer stays at the kernel default (net.core.rmem_default,
// ~208 KiB): measured with `npm run bench`, a 4 MiB one let TCP through the tunnel keep ~4 MiB queued
// in it, and ping under load rose from ~3 ms to ~12 ms with no gain in throughput. The send buffer is
// enlarged so that a batch from sendmmsg rarely meets a full socket. TSGUARD_UDP_RCVBUF and
// TSGUARD_UDP_SNDBUF (bytes; 0 = kernel default) override them, e.g. for links where bursts
// must outlast a garbage-collection pause.
constexpr int kDefaultRcvBuf = 0;
constexpr int kDefaultSndBuf = 4 * 1024 * 1024;

int BufSize(const char* env_name, int def) {
  const char* v = getenv(env_name);
  if (v == nullptr || *v == '\0') return def;
  char* end = nullptr;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < 0 || n > (1L << 30)) return def;  // not a byte count: keep the default
  return static_cast<int>(n);
}

void SetBuf(int fd, int force_opt, int opt) {
  const bool rcv = opt == SO_RCVBUF;
  int v = BufSize(rcv ? "TSGUARD_UDP_RCVBUF" : "TSGUARD_UDP_SNDBUF", rcv ? kDefaultRcvBuf : kDefaultSndBuf);
  if (v == 0) return;
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return;
  ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);  // capped by net.core.[rw]mem_max
}

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

bool IsTransientRecvError(int err) {
  // ICMP errors surfacing on the socket, memory pressure: not fatal.
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == ENOMEM || err == ENOBUFS || err == EPERM || err == ECONNRESET ||
         err == EMSGSIZE;
}

Napi::Value ThrowRange(Napi::Env env, const std::string& msg, const char* code) {
  Napi::RangeError e = Napi::RangeError::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

Napi::Function Udp::Init(Napi::Env env) {
  return DefineClass(env, "UdpSocket",
                     {
                         InstanceMethod<&Udp::Bind>("bind"),
                         InstanceAccessor<&Udp::GetPort>("port"),
                         InstanceAccessor<&Udp::GetFamily>("family"),
                         InstanceAccessor<&Udp::GetFd>("fd"),
                         InstanceMethod<&Udp::SetFwmark>("setFwmark"),
                         InstanceMethod<&Udp::Start>("start"),
                         InstanceMethod<&Udp::Stop>("stop"),
                         InstanceMethod<&Udp::SendBatch>("sendBatch"),
                         InstanceMethod<&Udp::Send>("send"),
                         InstanceMethod<&Udp::Stats>("stats"),
                         InstanceMethod<&Udp::Close>("close"),
                         InstanceMethod<&Udp::RefHandle>("ref"),
                         InstanceMethod<&Udp::UnrefHandle>("unref"),
                     });
}

Udp::Udp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Udp>(info) {
  const char* gso = getenv("TSGUARD_UDP_GSO");
  gso_ok_ = gso == nullptr || std::strcmp(gso, "0") != 0;
}

Udp::~Udp() { CloseAll(); }

bool Udp::RequireBound(Napi::Env env, const char* what) {
  if (fd_ >= 0) return true;
  MakeError(env, std::string("UdpSocket.") + what + ": the socket is " + (failed_ ? "failed" : "not bound or closed"),
            "ERR_SOCKET_NOT_BOUND", 0, nullptr)
      .ThrowAsJavaScriptException();
  return false;
}

Napi::Value Udp::Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "UdpSocket.bind(port, family): port must be a number");
  double p = info[0].As<Napi::Number>().DoubleValue();
  if (!(p >= 0 && p <= 65535) || p != static_cast<double>(static_cast<int>(p))) {
    return ThrowRange(env, "UdpSocket.bind: port must be an integer in 0..65535", "ERR_SOCKET_BAD_PORT");
  }
  int port = static_cast<int>(p);
  std::string family = "dual";
  if (info.Length() >= 2 && !info[1].IsUndefined()) {
    if (!info[1].IsString()) return ThrowType(env, "UdpSocket.bind: family must be 'dual' or '4'");
    family = info[1].As<Napi::String>().Utf8Value();
    if (family != "dual" && family != "4") return ThrowType(env, "UdpSocket.bind: family must be 'dual' or '4'", "ERR_INVALID_ARG_VALUE");
  }
  if (fd_ >= 0 || poll_ != nullptr) {
    MakeError(env, "UdpSocket.bind: the socket is already bound", "ERR_SOCKET_ALREADY_BOUND", 0, nullptr)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  int fd = -1;
  int af = AF_INET;
  if (family == "dual") {
    fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int err = errno;
      if (err != EAFNOSUPPORT && err != EPROTONOSUPPORT) {
        MakeError(env, std::string("cannot create UDP socket: ") + strerror(err), nullptr, err, "socket")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
      // No IPv6 in this kernel: fall back to IPv4 below.
    } else {
      int off = 0;
      if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
        int err = errno;
        CloseFd(fd);
        MakeError(env, std::string("cannot make the UDP socket dual-stack (IPV6_V6ONLY=0): ") + strerror(err),
                  nullptr, err, "setsockopt")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
      sockaddr_in6 sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sin6_family = AF_INET6;
      sa.sin6_addr = in6addr_any;
      sa.sin6_port = htons(static_cast<uint16_t>(port));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        int err = errno;
        CloseFd(fd);
        fd = -1;
        if (err != EADDRNOTAVAIL && err != EAFNOSUPPORT) {
          std::string msg = "cannot bind UDP port " + std::to_string(port) + ": " + strerror(err);
          if (err == EADDRINUSE) msg += " (another WireGuard/tsguard instance on this port?)";
          if (err == EACCES) msg += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
          MakeError(env, msg, nullptr, err, "bind").ThrowAsJavaScriptException();
          return env.Undefined();
        }
        // IPv6 disabled on this host: fall back to IPv4 below.
      } else {
        af = AF_INET6;
      }
    }
  }
  if (fd < 0) {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int err = errno;
      MakeError(env, std::string("cannot create UDP socket: ") + strerror(err), nullptr, err, "socket")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    sockaddr_in sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      int err = errno;
      CloseFd(fd);
      std::string msg = "cannot bind UDP port " + std::to_string(port) + ": " + strerror(err);
      if (err == EADDRINUSE) msg += " (another WireGuard/tsguard instance on this port?)";
      if (err == EACCES) msg += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
      MakeError(env, msg, nullptr, err, "bind").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    af = AF_INET;
  }

  SetBuf(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  SetBuf(fd, SO_SNDBUFFORCE, SO_SNDBUF);

  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) {
    int err = errno;
    CloseFd(fd);
    MakeError(env, std::string("getsockname failed: ") + strerror(err), nullptr, err, "getsockname")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  char tmp[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  int bound_port = FormatAddr(ss, tmp, sizeof tmp);

  poll_ = new uv_poll_t;
  int r = uv_poll_init_socket(GetLoop(env), poll_, fd);
  if (r != 0) {
    delete poll_;
    poll_ = nullptr;
    CloseFd(fd);
    MakeError(env, std::string("cannot watch the UDP socket with libuv: ") + uv_strerror(r), uv_err_name(r), 0,
              "uv_poll_init")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  poll_->data = this;
  fd_ = fd;
  af_ = af;
  port_ = bound_port;
  return Napi::Number::New(env, bound_port);
}

Napi::Value Udp::GetPort(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_); }

Napi::Value Udp::GetFamily(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (af_ == AF_INET6) return Napi::String::New(env, "dual");
  if (af_ == AF_INET) return Napi::String::New(env, "4");
  return env.Null();
}

Napi::Value Udp::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

Napi::Value Udp::SetFwmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "UdpSocket.setFwmark(mark): mark must be a number");
  double m = info[0].As<Napi::Number>().DoubleValue();
  if (!(m >= 0 && m <= 4294967295.0) || m != static_cast<double>(static_cast<uint32_t>(m))) {
    return ThrowRange(env, "UdpSocket.setFwmark: mark must be an integer in 0..0xffffffff", "ERR_OUT_OF_RANGE");
  }
  if (!RequireBound(env, "setFwmark")) return env.Undefined();
  uint32_t mark = static_cast<uint32_t>(m);
  if (::setsockopt(fd_, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    int err = errno;
    std::string msg = std::string("cannot set fwmark (SO_MARK) on the UDP socket: ") + strerror(err);
    if (err == EPERM || err == EACCES) msg += ". Setting a fwmark needs root or CAP_NET_ADMIN";
    MakeError(env, msg, nullptr, err, "setsockopt(SO_MARK)").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value Udp::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
    return ThrowType(env, "UdpSocket.start(onDatagrams, onError, onSendError?): callbacks must be functions");
  }
  if (info.Length() >= 3 && !info[2].IsUndefined() && !info[2].IsFunction()) {
    return ThrowType(env, "UdpSocket.start: onSendError must be a function or undefined");
  }
  if (!RequireBound(env, "start")) return env.Undefined();
  on_datagrams_ = Napi::Persistent(info[0].As<Napi::Function>());
  on_error_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (info.Length() >= 3 && info[2].IsFunction()) {
    on_send_error_ = Napi::Persistent(info[2].As<Napi::Function>());
  } else {
    on_send_error_.Reset();
  }
  if (!async_ctx_) async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "tsguard:UdpSocket", Value());
  if (!rx_buf_) rx_buf_.reset(new uint8_t[kBatch * kSlot]);  // left uninitialised: pages stay untouched until used
  reading_ = true;
  UpdatePoll();
  if (!self_ref_) {
    Ref();
    self_ref_ = true;
  }
  return env.Undefined();
}

void Udp::StopReading() {
  reading_ = false;
  UpdatePoll();
  if (self_ref_) {
    self_ref_ = false;
    Unref();
  }
}

Napi::Value Udp::Stop(const Napi::CallbackInfo& info) {
  StopReading();
  return info.Env().Undefined();
}

void Udp::UpdatePoll() {
  if (poll_ == nullptr) return;
  int events = (reading_ ? UV_READABLE : 0) | (queue_.empty() ? 0 : UV_WRITABLE);
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    uv_poll_stop(poll_);
  } else {
    uv_poll_start(poll_, events, &Udp::OnPoll);
  }
}

void Udp::OnPoll(uv_poll_t* handle, int status, int events) {
  Udp* self = static_cast<Udp*>(handle->data);
  if (self == nullptr || self->fd_ < 0) return;
  if (status < 0) {
    // POLLERR on a UDP socket: a pending socket error (e.g. from ICMP). Fetch
    // and clear it; libuv stopped the handle, so re-arm.
    int soerr = 0;
    socklen_t l = sizeof soerr;
    ::getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &soerr, &l);
    if (soerr != 0 && IsTransientRecvError(soerr)) {
      self->rx_errors_++;
      self->poll_events_ = 0;
      self->UpdatePoll();
    } else {
      self->Fail(soerr != 0 ? soerr : EIO, "poll");
    }
    return;
  }
  if (events & UV_WRITABLE) self->FlushQueue();
  if (self->fd_ < 0) return;
  if ((events & UV_READABLE) && self->reading_) self->ReadBatches();
}

void Udp::ReadBatches() {
  Napi::Env env = Env();
  Napi::HandleScope outer(env);
  Napi::Object self = Value();  // pins the wrapper while JS runs
  mmsghdr msgs[kBatch];
  iovec iovs[kBatch];
  sockaddr_storage addrs[kBatch];
  for (int round = 0; round < kMaxBatchesPerWake; round++) {
    for (unsigned i = 0; i < kBatch; i++) {
      iovs[i].iov_base = rx_buf_.get() + i * kSlot;
      iovs[i].iov_len = kSlot;
      std::memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_len = 0;
    }
    int r = ::recvmmsg(fd_, msgs, kBatch, 0, nullptr);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (IsTransientRecvError(err)) {
        rx_errors_++;
        continue;
      }
      Fail(err, "recvmmsg");
      return;
    }
    if (r == 0) return;
    Napi::HandleScope scope(env);
    Napi::Array datas = Napi::Array::New(env);
    Napi::Array hosts = Napi::Array::New(env);
    Napi::Array ports = Napi::Array::New(env);
    uint32_t n = 0;
    napi_value last_host = nullptr;
    int last_idx = -1;
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    for (int i = 0; i < r; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        rx_truncated_++;
        continue;
      }
      size_t len = msgs[i].msg_len;
      int port;
      if (last_idx >= 0 && SameAddr(addrs[i], msgs[i].msg_hdr.msg_namelen, addrs[last_idx],
                                    msgs[last_idx].msg_hdr.msg_namelen)) {
        // Same source as the previous datagram: reuse the string.
        const sockaddr_storage& ss = addrs[i];
        port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                                       : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
      } else {
        port = FormatAddr(addrs[i], text, sizeof text);
        last_host = Napi::String::New(env, text);
        last_idx = i;
      }
      datas.Set(n, Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t*>(iovs[i].iov_base), len));
      hosts.Set(n, last_host);
      ports.Set(n, Napi::Number::New(env, port));
      n++;
      rx_datagrams_++;
      rx_bytes_ += len;
    }
    if (n > 0) {
      rx_batches_++;
      CallJs(env, on_datagrams_, self, async_ctx_.get(), {datas, hosts, ports});
      if (fd_ < 0 || !reading_) return;
    }
    if (static_cast<unsigned>(r) < kBatch) return;
  }
}

void Udp::Fail(int err, const char* syscall) {
  if (failed_) return;
  failed_ = true;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  Napi::FunctionReference on_error = std::move(on_error_);
  StopReading();
  Napi::Error e = MakeError(env, std::string("UDP socket (port ") + std::to_string(port_) + ") failed: " + strerror(err),
                            nullptr, err, syscall);
  CallJs(env, on_error, self, async_ctx_.get(), {e.Value()});
}

bool Udp::ParseDest(Napi::Env env, napi_value host, napi_value port, Dest* out, std::string* why) {
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
    if (af_ == AF_INET6) {
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
  if (af_ == AF_INET6) {
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

void Udp::Enqueue(const uint8_t* data, size_t len, const sockaddr_storage& ss, socklen_t sslen) {
  if (queue_.size() >= kMaxQueue) {
    queue_.pop_front();
    tx_drops_++;
  }
  Queued q;
  q.data.reset(new uint8_t[len > 0 ? len : 1]);
  if (len > 0) std::memcpy(q.data.get(), data, len);
  q.len = len;
  q.ss = ss;
  q.sslen = sslen;
  queue_.push_back(std::move(q));
  tx_queued_total_++;
}

uint32_t Udp::SendDatagrams(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n) {
  uint32_t accepted = 0;
  if (!queue_.empty()) {
    FlushQueue();
    if (!queue_.empty()) {
      // Keep order: everything goes behind what is already waiting.
      for (uint32_t i = 0; i < n; i++) {
        if (dests[i].err != 0) {
          RecordSendError(dests[i].err, dests[i].ss);
          continue;
        }
        Enqueue(datas[i], lens[i], dests[i].ss, dests[i].len);
        accepted++;
      }
      UpdatePoll();
      return accepted;
    }
  }
  // Messages for sendmmsg. With UDP GSO, a run of datagrams to the same destination with the same
  // length (the last may be shorter) becomes one message with UDP_SEGMENT: the kernel walks its stack
  // once for the run and splits it late (a veth hands the whole run to the peer namespace), instead of
  // once per datagram. The receiver gets the same datagrams either way.
  struct Msg {
    uint32_t first, count;
    uint16_t segment;  // 0: a plain datagram
  };
  union GsoControl {
    cmsghdr align;
    char buf[CMSG_SPACE(sizeof(uint16_t))];
  };
  std::vector<Msg> plan;
  plan.reserve(n);
  for (uint32_t i = 0; i < n;) {
    uint32_t j = i + 1;
    if (gso_ok_ && dests[i].err == 0 && lens[i] > 0) {
      size_t total = lens[i];
      while (j < n && j - i < kMaxGsoSegments && dests[j].err == 0 && lens[j] > 0 && lens[j] <= lens[i] &&
             total + lens[j] <= kMaxGsoBytes && dests[j].len == dests[i].len &&
             std::memcmp(&dests[j].ss, &dests[i].ss, dests[i].len) == 0) {
        total += lens[j];
        if (lens[j++] < lens[i]) break;  // a shorter datagram ends the run
      }
    }
    plan.push_back(Msg{i, j - i, static_cast<uint16_t>(j - i > 1 ? lens[i] : 0)});
    i = j;
  }
  std::vector<iovec> iovs(n);
  for (uint32_t i = 0; i < n; i++) {
    iovs[i].iov_base = const_cast<uint8_t*>(datas[i]);
    iovs[i].iov_len = lens[i];
  }
  std::vector<mmsghdr> msgs(plan.size());
  std::vector<GsoControl> controls(plan.size());
  for (size_t m = 0; m < plan.size(); m++) {
    const Msg& g = plan[m];
    std::memset(&msgs[m], 0, sizeof msgs[m]);
    msghdr& h = msgs[m].msg_hdr;
    h.msg_name = const_cast<sockaddr_storage*>(&dests[g.first].ss);
    h.msg_namelen = dests[g.first].len;
    h.msg_iov = &iovs[g.first];
    h.msg_iovlen = g.count;
    if (g.segment != 0) {
      h.msg_control = controls[m].buf;
      h.msg_controllen = sizeof controls[m].buf;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      std::memcpy(CMSG_DATA(c), &g.segment, sizeof g.segment);
    }
  }
  size_t m = 0;
  while (m < plan.size()) {
    if (dests[plan[m].first].err != 0) {
      RecordSendError(dests[plan[m].first].err, dests[plan[m].first].ss);
      m++;
      continue;
    }
    size_t e = m;
    while (e < plan.size() && dests[plan[e].first].err == 0 && e - m < kMaxSendChunk) e++;
    int r = ::sendmmsg(fd_, &msgs[m], static_cast<unsigned>(e - m), 0);
    if (r > 0) {
      for (int k = 0; k < r; k++) {
        tx_bytes_ += msgs[m + k].msg_len;
        tx_datagrams_ += plan[m + k].count;
        accepted += plan[m + k].count;
        if (plan[m + k].segment != 0) tx_gso_messages_++;
      }
      m += static_cast<size_t>(r);
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    const uint32_t first = plan[m].first;
    if (plan[m].segment != 0 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
      // This kernel or route cannot do UDP GSO: send the rest datagram by datagram from now on.
      gso_ok_ = false;
      return accepted + SendDatagrams(datas + first, lens + first, dests + first, n - first);
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      for (uint32_t i = first; i < n; i++) {
        if (dests[i].err != 0) {
          RecordSendError(dests[i].err, dests[i].ss);
          continue;
        }
        Enqueue(datas[i], lens[i], dests[i].ss, dests[i].len);
        accepted++;
      }
      UpdatePoll();
      break;
    }
    // EHOSTUNREACH, ENETUNREACH, EPERM (firewall), EMSGSIZE, ENOBUFS...: these datagrams are lost;
    // carry on with the next message.
    for (uint32_t k = 0; k < plan[m].count; k++) RecordSendError(err, dests[first].ss);
    m++;
  }
  return accepted;
}

void Udp::FlushQueue() {
  if (fd_ < 0) return;
  while (!queue_.empty()) {
    mmsghdr msgs[kBatch];
    iovec iovs[kBatch];
    unsigned n = 0;
    for (auto it = queue_.begin(); it != queue_.end() && n < kBatch; ++it, ++n) {
      iovs[n].iov_base = it->data.get();
      iovs[n].iov_len = it->len;
      std::memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &it->ss;
      msgs[n].msg_hdr.msg_namelen = it->sslen;
      msgs[n].msg_hdr.msg_iov = &iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
    }
    int r = ::sendmmsg(fd_, msgs, n, 0);
    if (r > 0) {
      for (int k = 0; k < r; k++) {
        tx_bytes_ += msgs[k].msg_len;
        queue_.pop_front();
      }
      tx_datagrams_ += static_cast<uint64_t>(r);
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    RecordSendError(err, queue_.front().ss);
    queue_.pop_front();
  }
  UpdatePoll();
}

void Udp::RecordSendError(int err, const sockaddr_storage& ss) {
  tx_errors_++;
  last_tx_errno_ = err;
  if (on_send_error_.IsEmpty() || fd_ < 0 || pending_errors_.size() >= kMaxPendingErrors) return;
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  int port = FormatAddr(ss, text, sizeof text);
  pending_errors_.push_back(PendingError{err, text, port});
  if (async_handle_ == nullptr) {
    async_handle_ = new uv_async_t;
    if (uv_async_init(GetLoop(Env()), async_handle_, &Udp::OnAsync) != 0) {
      delete async_handle_;
      async_handle_ = nullptr;
      pending_errors_.clear();
      return;
    }
    async_handle_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_handle_));
  }
  // Reported from the next loop iteration, never from inside sendBatch().
  uv_async_send(async_handle_);
}

void Udp::OnAsync(uv_async_t* handle) {
  Udp* self = static_cast<Udp*>(handle->data);
  if (self != nullptr) self->DeliverSendErrors();
}

void Udp::DeliverSendErrors() {
  if (pending_errors_.empty() || on_send_error_.IsEmpty()) {
    pending_errors_.clear();
    return;
  }
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  std::vector<PendingError> errs;
  errs.swap(pending_errors_);
  for (const PendingError& pe : errs) {
    if (fd_ < 0 || on_send_error_.IsEmpty()) return;
    Napi::HandleScope inner(env);
    std::string where = std::strchr(pe.host.c_str(), ':') != nullptr ? "[" + pe.host + "]:" + std::to_string(pe.port)
                                                                       : pe.host + ":" + std::to_string(pe.port);
    Napi::Error e = MakeError(env, "sending a UDP datagram to " + where + " failed: " + strerror(pe.err), nullptr,
                              pe.err, "sendmmsg");
    e.Value().Set("address", Napi::String::New(env, pe.host));
    e.Value().Set("port", Napi::Number::New(env, pe.port));
    CallJs(env, on_send_error_, self, async_ctx_.get(), {e.Value()});
  }
}

Napi::Value Udp::SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray()) {
    return ThrowType(env, "UdpSocket.sendBatch(datas, hosts, ports, count?): datas, hosts and ports must be arrays");
  }
  Napi::Array datas = info[0].As<Napi::Array>();
  Napi::Array hosts = info[1].As<Napi::Array>();
  Napi::Array ports = info[2].As<Napi::Array>();
  uint32_t count = datas.Length();
  if (info.Length() >= 4 && !info[3].IsUndefined()) {
    if (!info[3].IsNumber()) return ThrowType(env, "UdpSocket.sendBatch: count must be a number");
    double c = info[3].As<Napi::Number>().DoubleValue();
    if (!(c >= 0) || c > 4294967295.0 || c != static_cast<double>(static_cast<uint32_t>(c))) {
      return ThrowRange(env, "UdpSocket.sendBatch: count must be a non-negative integer", "ERR_OUT_OF_RANGE");
    }
    count = static_cast<uint32_t>(c);
  }
  if (count > datas.Length() || count > hosts.Length() || count > ports.Length()) {
    return ThrowRange(env, "UdpSocket.sendBatch: count exceeds the length of datas, hosts or ports", "ERR_OUT_OF_RANGE");
  }
  if (!RequireBound(env, "sendBatch")) return env.Undefined();
  if (count == 0) return Napi::Number::New(env, 0);

  // Validate everything before sending anything.
  std::vector<const uint8_t*> ptrs(count);
  std::vector<size_t> lens(count);
  std::vector<Dest> dests(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value d, h, p;
    if (napi_get_element(env, datas, i, &d) != napi_ok || napi_get_element(env, hosts, i, &h) != napi_ok ||
        napi_get_element(env, ports, i, &p) != napi_ok) {
      return env.Undefined();
    }
    if (!GetBytes(env, d, &ptrs[i], &lens[i])) {
      return ThrowType(env, "UdpSocket.sendBatch: datas[" + std::to_string(i) + "] is not a Uint8Array");
    }
    std::string why;
    if (!ParseDest(env, h, p, &dests[i], &why)) {
      std::string shown;
      napi_valuetype t;
      if (napi_typeof(env, h, &t) == napi_ok && t == napi_string) shown = " ('" + Napi::String(env, h).Utf8Value() + "')";
      Napi::TypeError e = Napi::TypeError::New(env, "UdpSocket.sendBatch: destination " + std::to_string(i) + ": " +
                                                        why + shown + "; nothing was sent");
      e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ADDRESS"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  uint32_t accepted = SendDatagrams(ptrs.data(), lens.data(), dests.data(), count);
  return Napi::Number::New(env, accepted);
}

Napi::Value Udp::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) return ThrowType(env, "UdpSocket.send(data, host, port): missing arguments");
  const uint8_t* data;
  size_t len;
  if (!GetBytes(env, info[0], &data, &len)) return ThrowType(env, "UdpSocket.send: data is not a Uint8Array");
  if (!RequireBound(env, "send")) return env.Undefined();
  Dest dest;
  std::string why;
  if (!ParseDest(env, info[1], info[2], &dest, &why)) {
    std::string shown = info[1].IsString() ? " ('" + info[1].As<Napi::String>().Utf8Value() + "')" : "";
    Napi::TypeError e = Napi::TypeError::New(env, "UdpSocket.send: " + why + shown + "; nothing was sent");
    e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ADDRESS"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t accepted = SendDatagrams(&data, &len, &dest, 1);
  return Napi::Boolean::New(env, accepted == 1);
}

Napi::Value Udp::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  o.Set("rxDatagrams", num(rx_datagrams_));
  o.Set("rxBytes", num(rx_bytes_));
  o.Set("rxBatches", num(rx_batches_));
  o.Set("rxErrors", num(rx_errors_));
  o.Set("rxTruncated", num(rx_truncated_));
  o.Set("txDatagrams", num(tx_datagrams_));
  o.Set("txBytes", num(tx_bytes_));
  o.Set("txQueued", num(queue_.size()));
  o.Set("txQueuedTotal", num(tx_queued_total_));
  o.Set("txGsoMessages", num(tx_gso_messages_));
  o.Set("txDrops", num(tx_drops_));
  o.Set("txErrors", num(tx_errors_));
  if (last_tx_errno_ != 0) {
    o.Set("lastTxError", Napi::String::New(env, ErrnoName(last_tx_errno_)));
  } else {
    o.Set("lastTxError", env.Null());
  }
  return o;
}

void Udp::CloseAll() {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (async_handle_ != nullptr) {
    async_handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_handle_ = nullptr;
  }
  poll_events_ = 0;
  reading_ = false;
  if (fd_ >= 0) {
    CloseFd(fd_);
    fd_ = -1;
  }
  tx_drops_ += queue_.size();
  queue_.clear();
  pending_errors_.clear();
}

Napi::Value Udp::Close(const Napi::CallbackInfo& info) {
  CloseAll();
  on_datagrams_.Reset();
  on_error_.Reset();
  on_send_error_.Reset();
  // async_ctx_ and rx_buf_ stay until the destructor: close() may run inside a
  // callback that uses them.
  if (self_ref_) {
    self_ref_ = false;
    Unref();
  }
  return info.Env().Undefined();
}

Napi::Value Udp::RefHandle(const Napi::CallbackInfo& info) {
  if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value Udp::UnrefHandle(const Napi::CallbackInfo& info) {
  if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

}  // namespace tsg
