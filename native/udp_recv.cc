#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"
#include "udp.h"
#include "udp_internal.h"

namespace tsg {

namespace {

// What the control messages of a received message say: the UDP_GRO segment size (0 when it holds
// one datagram) and the local address it arrived on (IP_PKTINFO / IPV6_PKTINFO).
struct RecvInfo {
  int segment = 0;
  bool has_src = false;
  Source src;
};

RecvInfo ReadControl(msghdr* h) {
  RecvInfo r;
  for (cmsghdr* c = CMSG_FIRSTHDR(h); c != nullptr; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      std::memcpy(&r.segment, CMSG_DATA(c), sizeof r.segment);
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      std::memset(&r.src.addr, 0, sizeof r.src.addr);
      r.src.addr.s6_addr[10] = 0xff;
      r.src.addr.s6_addr[11] = 0xff;
      std::memcpy(&r.src.addr.s6_addr[12], &pi.ipi_spec_dst, 4);  // the local address replies leave from
      r.src.ifindex = static_cast<uint32_t>(pi.ipi_ifindex);
      r.has_src = true;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
               c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      r.src.addr = pi.ipi6_addr;
      r.src.ifindex = pi.ipi6_ifindex;
      r.has_src = true;
    }
  }
  return r;
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
    char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
  };
  Control controls[kBatch];
  WakeStarted();
  for (int round = 0; round < udp::kMaxBatchesPerWake; round++) {
    for (unsigned i = 0; i < kBatch; i++) {
      iovs[i].iov_base = rx_buf_.get() + i * kSlot;
      iovs[i].iov_len = kSlot;
      std::memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = controls[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof controls[i].buf;
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
    Span datas[udp::kMaxPerCallback];
    uint32_t n = 0;
    // Hands the datagrams so far to JS as one packed ArrayBuffer (their sources are in the record
    // table); false when the callback stopped or closed us.
    auto deliver = [&]() {
      rx_batches_++;
      Napi::HandleScope call(env);
      CallJs(env, on_datagrams_, self, async_ctx_.get(), {PackBatch(env, datas, n), Napi::Number::New(env, n)});
      if (fd_ < 0 || !reading_) return false;
      n = 0;
      return true;
    };
    uint8_t rec[kRecordLen];
    for (int i = 0; i < r; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        rx_truncated_++;
        continue;
      }
      size_t len = msgs[i].msg_len;
      const RecvInfo ri = ReadControl(&msgs[i].msg_hdr);
      if (ri.has_src && !dead_sources_.empty()) SourceAlive(ri.src);
      EncodeRecord(addrs[i], ri.has_src ? &ri.src : nullptr, rec);
      // A GRO message: datagrams of `seg` bytes from one source, the last maybe shorter.
      const int seg = gro_ ? ri.segment : 0;
      const size_t step = seg > 0 && static_cast<size_t>(seg) < len ? static_cast<size_t>(seg) : (len > 0 ? len : 1);
      const uint8_t* base = static_cast<uint8_t*>(iovs[i].iov_base);
      size_t off = 0;
      do {
        const size_t dl = len - off < step ? len - off : step;
        datas[n] = Span{base + off, static_cast<uint32_t>(dl)};
        std::memcpy(rx_table_ + n * kRecordLen, rec, kRecordLen);
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
    if (YieldWanted()) return;  // level-triggered: the rest waits one turn of the loop
  }
}

}  // namespace tsg
