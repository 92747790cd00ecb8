#include "udp.h"

#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"
#include "udp_internal.h"

namespace tsg {

void Udp::Enqueue(const uint8_t* data, size_t len, const sockaddr_storage& ss, socklen_t sslen) {
  if (queue_.size() >= udp::kMaxQueue) {
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

uint32_t Udp::EnqueueAll(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n) {
  uint32_t accepted = 0;
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
      while (j < n && j - i < udp::kMaxGsoSegments && dests[j].err == 0 && lens[j] > 0 && lens[j] <= lens[i] &&
             total + lens[j] <= udp::kMaxGsoBytes && dests[j].len == dests[i].len &&
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
    unsigned n = 0;
    for (auto it = queue_.begin(); it != queue_.end() && n < udp::kBatch; ++it, ++n) {
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
    if (!ParseDest(env, h, p, af_, &dests[i], &why)) {
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
  if (!ParseDest(env, info[1], info[2], af_, &dest, &why)) {
    std::string shown = info[1].IsString() ? " ('" + info[1].As<Napi::String>().Utf8Value() + "')" : "";
    Napi::TypeError e = Napi::TypeError::New(env, "UdpSocket.send: " + why + shown + "; nothing was sent");
    e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ADDRESS"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t accepted = SendDatagrams(&data, &len, &dest, 1);
  return Napi::Boolean::New(env, accepted == 1);
}

}  // namespace tsg
