#include "udp.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common.h"
#include "udp_internal.h"

namespace tsg {

namespace {

// Socket buffer sizes. The receive buffer (7 MiB, as in wireguard-go) must hold a peer's whole burst:
// its batches arrive at once (TSO super-packets split into dozens of datagrams, sent with GSO), and a
// kernel-default one overflows, which TCP through the tunnel sees as loss. The send buffer is enlarged
// so that a batch from sendmmsg rarely meets a full socket. TSGUARD_UDP_RCVBUF and TSGUARD_UDP_SNDBUF
// (bytes; 0 = kernel default) override them; SO_*BUFFORCE lifts the cap of net.core.[rw]mem_max.
constexpr int kDefaultRcvBuf = 7 * 1024 * 1024;
constexpr int kDefaultSndBuf = 4 * 1024 * 1024;

void SetBuf(int fd, int force_opt, int opt) {
  const bool rcv = opt == SO_RCVBUF;
  int v = static_cast<int>(EnvBytes(rcv ? "TSGUARD_UDP_RCVBUF" : "TSGUARD_UDP_SNDBUF", rcv ? kDefaultRcvBuf : kDefaultSndBuf, 1L << 30));
  if (v == 0) return;
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return;
  ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);  // capped by net.core.[rw]mem_max
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
                         RefMethod(),
                         UnrefMethod(),
                         YieldToMethod(),
                     });
}

Udp::Udp(const Napi::CallbackInfo& info) : PollHandle<Udp>(info) {
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
  if (fd_ >= 0 || HasPoll()) {
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
  char tmp[kAddrTextLen];
  int bound_port = FormatAddr(ss, tmp, sizeof tmp);

  int r = InitPoll(env, fd);
  if (r != 0) {
    CloseFd(fd);
    MakeError(env, std::string("cannot watch the UDP socket with libuv: ") + uv_strerror(r), uv_err_name(r), 0,
              "uv_poll_init")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  af_ = af;
  port_ = bound_port;
  EnableGro();
  EnablePktinfo();
  return Napi::Number::New(env, bound_port);
}

void Udp::EnableGro() {
  const char* v = getenv("TSGUARD_UDP_GRO");
  if (v != nullptr && std::strcmp(v, "0") == 0) return;
  // Before 5.12 a GRO packet could reach a socket without its segment size (wireguard-go's rule).
  utsname u;
  int major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return;
  if (major < 5 || (major == 5 && minor < 12)) return;
  int on = 1;
  gro_ = ::setsockopt(fd_, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
}

void Udp::EnablePktinfo() {
  // The local address of each received datagram, so that replies leave from it (the sticky source
  // the kernel's WireGuard keeps). On a dual-stack socket IPv4 datagrams report IP_PKTINFO.
  int on = 1;
  ::setsockopt(fd_, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  if (af_ == AF_INET6) ::setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
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
  if (info.Length() < 4 || !info[0].IsFunction() || !info[1].IsFunction()) {
    return ThrowType(env, "UdpSocket.start(onDatagrams, onError, onSendError, sources): callbacks must be functions");
  }
  if (!info[2].IsUndefined() && !info[2].IsFunction()) {
    return ThrowType(env, "UdpSocket.start: onSendError must be a function or undefined");
  }
  uint8_t* table;
  size_t table_len;
  if (!GetUint8Array(info[3], &table, &table_len) || table_len < udp::kMaxPerCallback * kRecordLen) {
    return ThrowType(env, "UdpSocket.start: sources must be a Uint8Array of " +
                              std::to_string(udp::kMaxPerCallback * kRecordLen) + " bytes (one endpoint record per datagram)");
  }
  if (!RequireBound(env, "start")) return env.Undefined();
  rx_table_ref_ = Napi::Persistent(info[3].As<Napi::Uint8Array>());
  rx_table_ = table;
  on_datagrams_ = Napi::Persistent(info[0].As<Napi::Function>());
  on_error_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (info.Length() >= 3 && info[2].IsFunction()) {
    on_send_error_ = Napi::Persistent(info[2].As<Napi::Function>());
  } else {
    on_send_error_.Reset();
  }
  if (!async_ctx_) async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "tsguard:UdpSocket", Value());
  if (!rx_buf_) rx_buf_.reset(new uint8_t[udp::kBatch * udp::kSlot]);  // left uninitialised: pages stay untouched until used
  reading_ = true;
  UpdatePoll();
  Pin();
  return env.Undefined();
}

void Udp::StopReading() {
  reading_ = false;
  UpdatePoll();
  Unpin();
}

Napi::Value Udp::Stop(const Napi::CallbackInfo& info) {
  StopReading();
  return info.Env().Undefined();
}

void Udp::UpdatePoll() { SetPollEvents((reading_ ? UV_READABLE : 0) | (queue_.empty() ? 0 : UV_WRITABLE)); }

void Udp::OnPoll(int status, int events) {
  if (status < 0) {
    // POLLERR on a UDP socket: a pending socket error (e.g. from ICMP). Fetch and clear it; libuv
    // stopped the handle, so re-arm.
    PollStoppedByLibuv();
    int soerr = 0;
    socklen_t l = sizeof soerr;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &l);
    if (soerr != 0 && udp::IsTransientRecvError(soerr)) {
      rx_errors_++;
      UpdatePoll();
    } else {
      Fail(soerr != 0 ? soerr : EIO, "poll");
    }
    return;
  }
  if (events & UV_WRITABLE) FlushQueue();
  if (fd_ < 0) return;
  if ((events & UV_READABLE) && reading_) ReadBatches();
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

Napi::Value Udp::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  o.Set("rxDatagrams", num(rx_datagrams_));
  o.Set("rxBytes", num(rx_bytes_));
  o.Set("rxBatches", num(rx_batches_));
  o.Set("rxErrors", num(rx_errors_));
  o.Set("rxTruncated", num(rx_truncated_));
  o.Set("rxGroDatagrams", num(rx_gro_));
  o.Set("gro", Napi::Boolean::New(env, gro_));
  o.Set("txDatagrams", num(tx_datagrams_));
  o.Set("txBytes", num(tx_bytes_));
  o.Set("txQueued", num(queue_.size()));
  o.Set("txQueuedTotal", num(tx_queued_total_));
  o.Set("txGsoMessages", num(tx_gso_messages_));
  o.Set("txSourceFallbacks", num(tx_source_fallbacks_));
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
  if (async_handle_ != nullptr) {
    async_handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_handle_ = nullptr;
  }
  ClosePoll();
  reading_ = false;
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
  Unpin();
  return info.Env().Undefined();
}

}  // namespace tsg
