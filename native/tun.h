// Linux TUN interface (IFF_TUN | IFF_NO_PI, and IFF_VNET_HDR with offloads unless
// TSGUARD_TUN_OFFLOAD=0) driven by a libuv poll handle. With offloads, reads split the kernel's
// GSO super-packets and writes coalesce each batch per flow (native/offload.h); JavaScript sees
// and writes plain IP packets either way.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "flow_queue.h"
#include "offload.h"
#include "poll_handle.h"

namespace tsg {

class Tun : public PollHandle<Tun> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new Tun(name): opens /dev/net/tun and attaches to / creates `name`.
  explicit Tun(const Napi::CallbackInfo& info);
  ~Tun() override;

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value WritePackets(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  friend class PollHandle<Tun>;
  void OnPoll(int status, int events);
  // Reads ahead into queue_ (up to its limit, or until the kernel has no more); false after a fatal
  // read error (reported through Fail).
  bool Fill();
  // Up to kMaxBatchesPerWake rounds of Fill and one batch from queue_ to JavaScript.
  void Service();
  // One batch from queue_ into split_/split_lens_; the number of packets.
  uint32_t TakeBatch();
  // The idle handle runs Service on every loop turn while queue_ holds reads (the fd may be drained).
  void UpdateIdle();
  static void OnIdle(uv_idle_t* idle);
  // Stops reading and reports a fatal error to the error callback.
  void Fail(int err, const char* syscall);
  void StopPolling();
  void CloseAll();
  // Turns on IFF_VNET_HDR offloads after TUNSETIFF; false when the kernel takes none.
  void EnableOffloads();
  // One write() of `len` bytes behind a virtio_net_hdr (when vnet_): the errno, or 0.
  int WriteOne(const offload::VnetHdr* hdr, const uint8_t* head, size_t head_len, const uint8_t* const* parts,
               const size_t* part_lens, uint32_t nparts);
  void CountWrite(int err, uint32_t packets, size_t bytes);

  std::string name_;
  bool reading_ = false;
  bool failed_ = false;
  std::unique_ptr<FlowQueue> queue_;  // reads ahead of the batches, per flow (native/flow_queue.h)
  uv_idle_t* idle_ = nullptr;
  bool idle_on_ = false;
  bool vnet_ = false;        // opened with IFF_VNET_HDR: every read and write has a virtio_net_hdr
  bool tso_ = false;         // TUNSETOFFLOAD took CSUM|TSO4|TSO6: reads may be TCP super-packets
  bool uso_ = false;         // ... and USO4|USO6: UDP super-packets too, and UDP writes coalesce
  bool coalesce_ = false;    // writes coalesce; off for good once the kernel refuses a coalesced write
  std::vector<uint8_t> split_;         // the packets of one read round, back to back
  std::vector<uint32_t> split_lens_;
  std::vector<Span> spans_;            // split_ cut for PackBatch
  std::vector<offload::WriteUnit> units_;  // plan of one writePackets call
  std::vector<uint32_t> next_;
  std::vector<const uint8_t*> wptrs_;
  std::vector<size_t> wlens_;
  Napi::FunctionReference on_packets_;
  Napi::FunctionReference on_error_;
  std::unique_ptr<Napi::AsyncContext> async_;

  uint64_t rx_packets_ = 0, rx_bytes_ = 0, rx_batches_ = 0;
  uint64_t rx_gso_ = 0, rx_malformed_ = 0, rx_nomem_ = 0;
  uint64_t tx_packets_ = 0, tx_bytes_ = 0, tx_drops_ = 0, tx_errors_ = 0, tx_coalesced_ = 0;
  int last_tx_errno_ = 0;
};

}  // namespace tsg
