#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"
#include "udp.h"
#include "udp_internal.h"

namespace tsg {

namespace {

// The UDP_GRO segment size of a received message, or 0 when it holds one datagram.
int GroSegmentSize(msghdr* h) {
  for (cmsghdr* c = CMSG_FIRSTHDR(h); c != nullptr; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      std::memcpy(&seg, CMSG_DATA(c), sizeof seg);
      return seg;
    }
  }
  return 0;
}

}  // namespace

void Udp::ReadBatches() {
  using udp::kBatch;
  using udp::kSlot;
  Napi::Env env = Env();
  Napi::HandleScope outer(env);
  Napi::Object self = Value();  // pins the wrapper while JS runs
  mmsghdr msgs[kBatch];
  iovec iovs[kBatch];
  sockaddr_storage addrs[kBatch];
  union Control {
    cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  };
  Control controls[kBatch];
  for (int round = 0; round < udp::kMaxBatchesPerWake; round++) {
    for (unsigned i = 0; i < kBatch; i++) {
      iovs[i].iov_base = rx_buf_.get() + i * kSlot;
      iovs[i].iov_len = kSlot;
      std::memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (gro_) {
        msgs[i].msg_hdr.msg_control = controls[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof controls[i].buf;
      }
      msgs[i].msg_len = 0;
    }
    int r = ::recvmmsg(fd_, msgs, kBatch, 0, nullptr);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (udp::IsTransientRecvError(err)) {
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
    // Hands the datagrams so far to JS; false when the callback stopped or closed us.
    auto deliver = [&]() {
      rx_batches_++;
      CallJs(env, on_datagrams_, self, async_ctx_.get(), {datas, hosts, ports});
      if (fd_ < 0 || !reading_) return false;
      datas = Napi::Array::New(env);
      hosts = Napi::Array::New(env);
      ports = Napi::Array::New(env);
      n = 0;
      return true;
    };
    napi_value last_host = nullptr;
    int last_idx = -1;
    char text[kAddrTextLen];
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
      napi_value port_value = Napi::Number::New(env, port);
      // A GRO message: datagrams of `seg` bytes from one source, the last maybe shorter.
      const int seg = gro_ ? GroSegmentSize(&msgs[i].msg_hdr) : 0;
      const size_t step = seg > 0 && static_cast<size_t>(seg) < len ? static_cast<size_t>(seg) : (len > 0 ? len : 1);
      const uint8_t* base = static_cast<uint8_t*>(iovs[i].iov_base);
      size_t off = 0;
      do {
        const size_t dl = len - off < step ? len - off : step;
        datas.Set(n, Napi::Buffer<uint8_t>::Copy(env, base + off, dl));
        hosts.Set(n, last_host);
        ports.Set(n, port_value);
        n++;
        rx_datagrams_++;
        rx_bytes_ += dl;
        if (step < len) rx_gro_++;
        off += dl;
        if (n == udp::kMaxPerCallback && !deliver()) return;
      } while (off < len);
    }
    if (n > 0 && !deliver()) return;
    if (static_cast<unsigned>(r) < kBatch) return;
  }
}

}  // namespace tsg
