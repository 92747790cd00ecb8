// Non-blocking UDP socket with batched I/O (recvmmsg/sendmmsg, UDP GSO on send, UDP GRO on
// receive) driven by a libuv poll handle. No protocol logic: datagrams in, datagrams out.
// udp_socket.cc: socket setup and lifecycle; udp_recv.cc: receive; udp_send.cc: send, GSO, the
// queue for a full socket, send errors and the sticky source address; endpoint.cc: the binary
// endpoint records and the few conversions to and from text.
#pragma once

#include <napi.h>
#include <uv.h>

#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "endpoint.h"
#include "poll_handle.h"

namespace tsg {

class Udp : public PollHandle<Udp> {
 public:
  static Napi::Function Init(Napi::Env env);

  explicit Udp(const Napi::CallbackInfo& info);
  ~Udp() override;

 private:
  friend class PollHandle<Udp>;

  struct Queued {
    std::unique_ptr<uint8_t[]> data;
    size_t len;
    Dest dest;
  };
  struct PendingError {
    int err;
    std::string host;
    int port;
  };

  // udp_socket.cc
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value GetPort(const Napi::CallbackInfo& info);
  Napi::Value GetFamily(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value SetFwmark(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  bool RequireBound(Napi::Env env, const char* what);
  // Turns on UDP_GRO (Linux ≥ 5.12) unless TSGUARD_UDP_GRO=0.
  void EnableGro();
  // Turns on IP_PKTINFO / IPV6_RECVPKTINFO: each datagram reports the local address it arrived on.
  void EnablePktinfo();
  void UpdatePoll();
  void OnPoll(int status, int events);
  void Fail(int err, const char* syscall);
  void StopReading();
  void CloseAll();

  // udp_recv.cc
  void ReadBatches();

  // udp_send.cc
  Napi::Value SendBatch(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  // Sends datagrams now; queues the rest on EAGAIN. Returns how many were sent or queued.
  uint32_t SendDatagrams(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n);
  void Enqueue(const uint8_t* data, size_t len, const Dest& dest);
  // Queues datagrams behind a full socket (per-datagram address errors are recorded); how many were queued.
  uint32_t EnqueueAll(const uint8_t* const* datas, const size_t* lens, const Dest* dests, uint32_t n);
  void FlushQueue();
  void RecordSendError(int err, const sockaddr_storage& ss);
  void DeliverSendErrors();
  // The local address to send `d` from: its source unless that address failed (see SourceFailed).
  const Source* UsableSource(const Dest& d) const;
  // A send from `src` failed with EINVAL/EADDRNOTAVAIL/ENETUNREACH (the address was removed): later sends with
  // it fall back to the route's choice until a datagram arrives on it again (SourceAlive).
  void SourceFailed(const Source& src);
  void SourceAlive(const Source& src);
  static void OnAsync(uv_async_t* handle);

  int af_ = 0;  // AF_INET6 (dual-stack) or AF_INET
  int port_ = 0;
  uv_async_t* async_handle_ = nullptr;
  bool reading_ = false;
  bool failed_ = false;

  std::unique_ptr<uint8_t[]> rx_buf_;
  // The JS-owned table the sources of a callback's datagrams are written to (kRecordLen each).
  Napi::Reference<Napi::Uint8Array> rx_table_ref_;
  uint8_t* rx_table_ = nullptr;
  std::vector<Source> dead_sources_;
  std::deque<Queued> queue_;
  std::vector<PendingError> pending_errors_;

  Napi::FunctionReference on_datagrams_;
  Napi::FunctionReference on_error_;
  Napi::FunctionReference on_send_error_;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;

  uint64_t rx_datagrams_ = 0, rx_bytes_ = 0, rx_batches_ = 0, rx_errors_ = 0, rx_truncated_ = 0, rx_gro_ = 0;
  uint64_t tx_datagrams_ = 0, tx_bytes_ = 0, tx_drops_ = 0, tx_errors_ = 0, tx_queued_total_ = 0, tx_gso_messages_ = 0,
           tx_source_fallbacks_ = 0;
  int last_tx_errno_ = 0;
  // UDP GSO for runs of equal datagrams to one destination; off after the kernel refuses it once, or
  // when TSGUARD_UDP_GSO=0.
  bool gso_ok_ = true;
  // UDP_GRO is on: a read may hold several datagrams of one source, cut by the segment-size cmsg.
  bool gro_ = false;
};

}  // namespace tsg
