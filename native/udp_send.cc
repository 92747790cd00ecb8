#include "udp.h"

#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"
#include "udp_internal.h"

namespace tsg {

void Udp::Enqueue(const uint8_t* data, size_t len, const Dest& dest) {
  if (queue_.size() >= udp::kMaxQueue) {
    queue_.pop_front();
    tx_drops_++;
  }
  Queued q;
  q.data.reset(new uint8_t[len > 0 ? len : 1]);
  if (len > 0) std::memcpy(q.data.get(), data, len);
  q.len = len;
  q.dest = dest;
  queue_.push_back(std::move(q));
  tx_queued_total_++;
}

uint32_t Udp::EnqueueAll(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n) {
  uint32_t accepted = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (dests[i].err != 0) {
      RecordSendError(dests[i].err, dests[i].ss);
      continue;
    }
    Enqueue(datas[i], lens[i], dests[i]);
    accepted++;
  }
  UpdatePoll();
  return accepted;
}

namespace {

union SendControl {
  cmsghdr align;
  char buf[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(in6_pktinfo))];
};

// Fills the control messages of one outgoing message: UDP_SEGMENT when `segment` is non-zero, and
// the local address to send from when `src` is non-null (IP_PKTINFO for IPv4, which also serves an
// IPv4-mapped destination on a dual-stack socket; IPV6_PKTINFO for IPv6). Sets msg_control(len).
void BuildControl(msghdr* h, SendControl* c, uint16_t segment, const Source* src) {
  size_t len = (segment != 0 ? CMSG_SPACE(sizeof(uint16_t)) : 0);
  const bool v4 = src != nullptr && IN6_IS_ADDR_V4MAPPED(&src->addr);
  if (src != nullptr) len += v4 ? CMSG_SPACE(sizeof(in_pktinfo)) : CMSG_SPACE(sizeof(in6_pktinfo));
  if (len == 0) {
    h->msg_control = nullptr;
    h->msg_controllen = 0;
    return;
  }
  std::memset(c->buf, 0, sizeof c->buf);
  h->msg_control = c->buf;
  h->msg_controllen = len;
  cmsghdr* m = CMSG_FIRSTHDR(h);
  if (segment != 0) {
    m->cmsg_level = SOL_UDP;
    m->cmsg_type = UDP_SEGMENT;
    m->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    std::memcpy(CMSG_DATA(m), &segment, sizeof segment);
    m = CMSG_NXTHDR(h, m);
  }
  if (src == nullptr) return;
  if (v4) {
    in_pktinfo pi;
    std::memset(&pi, 0, sizeof pi);
    std::memcpy(&pi.ipi_spec_dst, &src->addr.s6_addr[12], 4);  // ifindex 0: the route picks the interface
    m->cmsg_level = IPPROTO_IP;
    m->cmsg_type = IP_PKTINFO;
    m->cmsg_len = CMSG_LEN(sizeof pi);
    std::memcpy(CMSG_DATA(m), &pi, sizeof pi);
  } else {
    in6_pktinfo pi;
    std::memset(&pi, 0, sizeof pi);
    pi.ipi6_addr = src->addr;
    // The interface matters only for a link-local source (its address is not unique across links).
    if (IN6_IS_ADDR_LINKLOCAL(&src->addr)) pi.ipi6_ifindex = src->ifindex;
    m->cmsg_level = IPPROTO_IPV6;
    m->cmsg_type = IPV6_PKTINFO;
    m->cmsg_len = CMSG_LEN(sizeof pi);
    std::memcpy(CMSG_DATA(m), &pi, sizeof pi);
  }
}

// The kernel's answers to a source address this host does not have (any more): EINVAL for IPv6,
// ENETUNREACH from the IPv4 route lookup, EADDRNOTAVAIL. A real "no route" costs one retry, after
// which the source is skipped until a datagram arrives on it again.
bool IsSourceError(int err) { return err == EINVAL || err == EADDRNOTAVAIL || err == ENETUNREACH; }

}  // namespace

const Source* Udp::UsableSource(const Dest& d) const {
  if (!d.has_src) return nullptr;
  for (const Source& s : dead_sources_) {
    if (SameSource(s, d.src)) return nullptr;
  }
  return &d.src;
}

void Udp::SourceFailed(const Source& src) {
  tx_source_fallbacks_++;
  for (const Source& s : dead_sources_) {
    if (SameSource(s, src)) return;
  }
  if (dead_sources_.size() >= udp::kMaxDeadSources) dead_sources_.erase(dead_sources_.begin());
  dead_sources_.push_back(src);
}

void Udp::SourceAlive(const Source& src) {
  for (auto it = dead_sources_.begin(); it != dead_sources_.end(); ++it) {
    if (SameSource(*it, src)) {
      dead_sources_.erase(it);
      return;
    }
  }
}

uint32_t Udp::SendDatagrams(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n) {
  uint32_t accepted = 0;
  if (!queue_.empty()) {
    FlushQueue();
    // Keep order: everything goes behind what is already waiting.
    if (!queue_.empty()) return EnqueueAll(datas, lens, dests, n);
  }
  // Messages for sendmmsg. With UDP GSO, a run of datagrams to the same destination with the same
  // length (the last may be shorter) becomes one message with UDP_SEGMENT: the kernel walks its stack
  // once for the run and splits it late (a veth hands the whole run to the peer namespace), instead of
  // once per datagram. The receiver gets the same datagrams either way.
  struct Msg {
    uint32_t first, count;
    uint16_t segment;  // 0: a plain datagram
  };
  std::vector<Msg> plan;
  plan.reserve(n);
  for (uint32_t i = 0; i < n;) {
    uint32_t j = i + 1;
    if (gso_ok_ && dests[i].err == 0 && lens[i] > 0) {
      size_t total = lens[i];
      while (j < n && j - i < udp::kMaxGsoSegments && dests[j].err == 0 && lens[j] > 0 && lens[j] <= lens[i] &&
             total + lens[j] <= udp::kMaxGsoBytes && dests[j].len == dests[i].len &&
             std::memcmp(&dests[j].ss, &dests[i].ss, dests[i].len) == 0 && dests[j].has_src == dests[i].has_src &&
             (!dests[i].has_src || SameSource(dests[j].src, dests[i].src))) {
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
  std::vector<SendControl> controls(plan.size());
  for (size_t m = 0; m < plan.size(); m++) {
    const Msg& g = plan[m];
    std::memset(&msgs[m], 0, sizeof msgs[m]);
    msghdr& h = msgs[m].msg_hdr;
    h.msg_name = const_cast<sockaddr_storage*>(&dests[g.first].ss);
    h.msg_namelen = dests[g.first].len;
    h.msg_iov = &iovs[g.first];
    h.msg_iovlen = g.count;
    BuildControl(&h, &controls[m], g.segment, UsableSource(dests[g.first]));
  }
  size_t m = 0;
  while (m < plan.size()) {
    if (dests[plan[m].first].err != 0) {
      RecordSendError(dests[plan[m].first].err, dests[plan[m].first].ss);
      m++;
      continue;
    }
    size_t e = m;
    while (e < plan.size() && dests[plan[e].first].err == 0 && e - m < udp::kMaxSendChunk) e++;
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
    if (IsSourceError(err) && msgs[m].msg_hdr.msg_controllen != 0 && UsableSource(dests[first]) != nullptr) {
      // The local address the peer's packets arrived on is gone: from now on (until a datagram
      // arrives on it again) these leave from the route's choice. Retry this message and rebuild
      // the later ones from that source.
      const Source gone = dests[first].src;
      SourceFailed(gone);
      for (size_t k = m; k < plan.size(); k++) {
        const Dest& d = dests[plan[k].first];
        if (d.has_src && SameSource(d.src, gone)) BuildControl(&msgs[k].msg_hdr, &controls[k], plan[k].segment, nullptr);
      }
      continue;
    }
    if (plan[m].segment != 0 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
      // This kernel or route cannot do UDP GSO: send the rest datagram by datagram from now on.
      gso_ok_ = false;
      return accepted + SendDatagrams(datas + first, lens + first, dests + first, n - first);
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      accepted += EnqueueAll(datas + first, lens + first, dests + first, n - first);
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
    mmsghdr msgs[udp::kBatch];
    iovec iovs[udp::kBatch];
    SendControl controls[udp::kBatch];
    unsigned n = 0;
    for (auto it = queue_.begin(); it != queue_.end() && n < udp::kBatch; ++it, ++n) {
      iovs[n].iov_base = it->data.get();
      iovs[n].iov_len = it->len;
      std::memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &it->dest.ss;
      msgs[n].msg_hdr.msg_namelen = it->dest.len;
      msgs[n].msg_hdr.msg_iov = &iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      BuildControl(&msgs[n].msg_hdr, &controls[n], 0, UsableSource(it->dest));
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
    if (IsSourceError(err) && UsableSource(queue_.front().dest) != nullptr) {
      SourceFailed(queue_.front().dest.src);  // retried from the route's choice
      continue;
    }
    RecordSendError(err, queue_.front().dest.ss);
    queue_.pop_front();
  }
  UpdatePoll();
}

void Udp::RecordSendError(int err, const sockaddr_storage& ss) {
  tx_errors_++;
  last_tx_errno_ = err;
  if (on_send_error_.IsEmpty() || fd_ < 0 || pending_errors_.size() >= udp::kMaxPendingErrors) return;
  char text[kAddrTextLen];
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

// sendBatch(datas, records, count?): datas[i] goes to the endpoint record at records[i * 48].
// sendBatch(stores, views, records, count): the datagrams are views of stores
// (src/util/store-table.ts); datagram i goes to endpoint record i.
Napi::Value Udp::SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* table;
  size_t table_len;
  if (info.Length() < 4 || !GetUint8Array(info[2], &table, &table_len) || !info[3].IsNumber()) {
    return ThrowType(env, "UdpSocket.sendBatch(stores, views, records, count): records must be a Uint8Array, count a number");
  }
  const double c = info[3].As<Napi::Number>().DoubleValue();
  if (!(c >= 0) || c > 4294967295.0 || c != static_cast<double>(static_cast<uint32_t>(c))) {
    return ThrowRange(env, "UdpSocket.sendBatch: count must be a non-negative integer", "ERR_OUT_OF_RANGE");
  }
  const uint32_t count = static_cast<uint32_t>(c);
  if (count > table_len / kRecordLen) {
    return ThrowRange(env, "UdpSocket.sendBatch: count exceeds the endpoint records", "ERR_OUT_OF_RANGE");
  }
  // Validate everything before sending anything.
  std::vector<const uint8_t*> ptrs;
  std::vector<size_t> lens;
  if (!ResolveViews(env, info[0], info[1], count, "UdpSocket.sendBatch", &ptrs, &lens)) return env.Undefined();
  if (!RequireBound(env, "sendBatch")) return env.Undefined();
  if (count == 0) return Napi::Number::New(env, 0);
  std::vector<Dest> dests(count);
  for (uint32_t i = 0; i < count; i++) DecodeRecord(table + i * kRecordLen, af_, &dests[i]);
  uint32_t accepted = SendDatagrams(ptrs.data(), lens.data(), dests.data(), count);
  return Napi::Number::New(env, accepted);
}

// send(data, record): one datagram to one endpoint record.
Napi::Value Udp::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data;
  size_t len;
  uint8_t* rec;
  size_t rec_len;
  if (info.Length() < 2 || !GetBytes(env, info[0], &data, &len) || !GetUint8Array(info[1], &rec, &rec_len) ||
      rec_len < kRecordLen) {
    return ThrowType(env, "UdpSocket.send(data: Uint8Array, record: Uint8Array of 48 bytes)");
  }
  if (!RequireBound(env, "send")) return env.Undefined();
  Dest dest;
  DecodeRecord(rec, af_, &dest);
  uint32_t accepted = SendDatagrams(&data, &len, &dest, 1);
  return Napi::Boolean::New(env, accepted == 1);
}

}  // namespace tsg
