#include "tun.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <net/if.h>  // before linux/if_tun.h; never together with linux/if.h
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20  // Linux ≥ 6.2
#define TUN_F_USO6 0x40
#endif

namespace tsg {

namespace {

using offload::kVnetHdrLen;

constexpr int kBatch = 64;            // reads per JS callback at most
// Packets per JS callback: reading stops once a batch has this many (a split read adds up to ~45).
// Everything a batch produces leaves as one sendmmsg, so this bounds the burst the peer's socket
// buffer must hold (wireguard-go's batch is 128 too).
constexpr uint32_t kMaxPackets = 128;
constexpr int kMaxBatchesPerWake = 8; // then yield to the loop (level-triggered)
constexpr size_t kBufSize = 65536;    // > largest possible TUN MTU (65535)
// Bytes read ahead into the flow queue (TSGUARD_TUN_QUEUE; 0 = one batch at a time). It must hold the
// standing queue of a bulk TCP flow (its window: a few MiB) for a sparse flow to overtake it.
constexpr long kDefaultQueueBytes = 4L << 20;
// Reads per Fill at most, so that one turn of the loop stays short when the kernel holds a lot.
constexpr int kMaxReadsPerFill = 256;

const char kDevPath[] = "/dev/net/tun";

Napi::Error TunError(Napi::Env env, const std::string& name, const std::string& message,
                     const char* code, int err, const char* syscall) {
  Napi::Error e = MakeError(env, message, code, err, syscall);
  e.Value().Set("ifname", Napi::String::New(env, name));
  return e;
}

// Why a TUN fd stopped working when read()/write()/poll fail with this errno.
// EBADFD is what the kernel returns once the interface was deleted
// (`ip link del`, netns removal): the file is detached from any device.
bool IsLinkGone(int err) { return err == EBADFD || err == ENODEV || err == ENXIO || err == EIO; }

// Mirrors the kernel's dev_valid_name(), minus the length check done apart.
bool ValidNameChars(const std::string& name) {
  if (name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c == '/' || c == ':' || c == '\0' || c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

Napi::Function Tun::Init(Napi::Env env) {
  return DefineClass(env, "Tun",
                     {
                         InstanceAccessor<&Tun::GetName>("name"),
                         InstanceAccessor<&Tun::GetFd>("fd"),
                         InstanceMethod<&Tun::Start>("start"),
                         InstanceMethod<&Tun::Stop>("stop"),
                         InstanceMethod<&Tun::WritePackets>("writePackets"),
                         InstanceMethod<&Tun::Stats>("stats"),
                         InstanceMethod<&Tun::Close>("close"),
                         RefMethod(),
                         UnrefMethod(),
                         YieldToMethod(),
                     });
}

Tun::Tun(const Napi::CallbackInfo& info) : PollHandle<Tun>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowType(env, "Tun: the interface name must be a string");
    return;
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  const char* code = nullptr;
  const std::string problem = IfNameLengthProblem(name, &code);
  if (!problem.empty()) {
    TunError(env, name, "invalid TUN interface name '" + name + "': " + problem, code, 0, nullptr).ThrowAsJavaScriptException();
    return;
  }
  if (!ValidNameChars(name)) {
    TunError(env, name,
             "invalid TUN interface name '" + name +
                 "': names cannot be '.' or '..' or contain '/', ':', spaces or control characters",
             "EINVAL", 0, nullptr)
        .ThrowAsJavaScriptException();
    return;
  }

  int fd = ::open(kDevPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = std::string("cannot open ") + kDevPath + ": " + strerror(err) + ". ";
    if (err == ENOENT) {
      msg += "The TUN device node is missing: load the tun kernel module (modprobe tun) or create the "
             "device node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun); "
             "in a container, pass the device through (e.g. --device /dev/net/tun)";
    } else if (err == ENODEV || err == ENXIO) {
      msg += "The tun driver is not available in this kernel: load it with modprobe tun";
    } else if (err == EPERM || err == EACCES) {
      msg += "tsguard needs root or CAP_NET_ADMIN (and access to /dev/net/tun) to create TUN interfaces";
    }
    TunError(env, name, msg, nullptr, err, "open").ThrowAsJavaScriptException();
    return;
  }

  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  const char* off = getenv("TSGUARD_TUN_OFFLOAD");
  const bool want_vnet = off == nullptr || std::strcmp(off, "0") != 0;
  ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (want_vnet ? IFF_VNET_HDR : 0));
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    CloseFd(fd);
    std::string prefix = "cannot create or attach TUN interface '" + name + "': ";
    if (err == EPERM || err == EACCES) {
      TunError(env, name, prefix + strerror(err) + ". tsguard needs root or CAP_NET_ADMIN", nullptr, err,
               "ioctl(TUNSETIFF)")
          .ThrowAsJavaScriptException();
    } else if (err == EBUSY) {
      TunError(env, name,
               prefix + "the TUN interface exists and is already attached to another open file " +
                   "(another tsguard or wireguard-go instance?); stop that process or choose another name",
               nullptr, err, "ioctl(TUNSETIFF)")
          .ThrowAsJavaScriptException();
    } else if (err == EINVAL && if_nametoindex(name.c_str()) != 0) {
      TunError(env, name,
               prefix + "an interface with this name already exists and is not a TUN interface; " +
                   "delete it (ip link del " + name + ") or choose another name",
               "ENOTTUN", err, "ioctl(TUNSETIFF)")
          .ThrowAsJavaScriptException();
    } else {
      TunError(env, name, prefix + strerror(err), nullptr, err, "ioctl(TUNSETIFF)").ThrowAsJavaScriptException();
    }
    return;
  }

  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  name_ = ifr.ifr_name;  // the kernel fills in the real name for patterns such as "tun%d"
  int r = InitPoll(env, fd);
  if (r != 0) {
    CloseFd(fd);
    TunError(env, name_, std::string("cannot watch the TUN fd with libuv: ") + uv_strerror(r), uv_err_name(r), 0,
             "uv_poll_init")
        .ThrowAsJavaScriptException();
    return;
  }
  if (want_vnet) EnableOffloads();
}

Tun::~Tun() { CloseAll(); }

void Tun::EnableOffloads() {
  vnet_ = true;
  coalesce_ = true;  // writing GSO packets needs no TUNSETOFFLOAD; a refusal turns it off (WritePackets)
  // Checksum offload and TSO are what make the kernel hand over super-packets; USO (Linux ≥ 6.2)
  // adds UDP ones. An older kernel refuses the unknown bits with EINVAL: retry without them.
  if (::ioctl(fd_, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6) == 0) {
    tso_ = uso_ = true;
  } else if (::ioctl(fd_, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0) {
    tso_ = true;
  }
}

Napi::Value Tun::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

Napi::Value Tun::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

Napi::Value Tun::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
    return ThrowType(env, "Tun.start(onPackets, onError): both arguments must be functions");
  }
  if (fd_ < 0) {
    TunError(env, name_, "TUN interface '" + name_ + "' is closed", "ERR_CLOSED", 0, nullptr)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (failed_) {
    TunError(env, name_, "TUN interface '" + name_ + "' has failed; close it", "ERR_FAILED", 0, nullptr)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  on_packets_ = Napi::Persistent(info[0].As<Napi::Function>());
  on_error_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (!async_) async_ = std::make_unique<Napi::AsyncContext>(env, "tsguard:Tun", Value());
  if (!queue_) {
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) seed = static_cast<uint32_t>(uv_hrtime());
    queue_ = std::make_unique<FlowQueue>(static_cast<size_t>(EnvBytes("TSGUARD_TUN_QUEUE", kDefaultQueueBytes, 1L << 30)),
                                         static_cast<uint32_t>(kBufSize + kVnetHdrLen), seed);
  }
  if (idle_ == nullptr) {
    idle_ = new uv_idle_t;
    uv_idle_init(GetLoop(env), idle_);
    idle_->data = this;
  }
  int r = SetPollEvents(UV_READABLE);
  if (r != 0) {
    TunError(env, name_, std::string("uv_poll_start failed: ") + uv_strerror(r), uv_err_name(r), 0, "uv_poll_start")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  reading_ = true;
  Pin();
  UpdateIdle();  // reads queued before a stop() are taken without waiting for new ones
  return env.Undefined();
}

void Tun::StopPolling() {
  SetPollEvents(0);
  reading_ = false;
  UpdateIdle();
  Unpin();
}

Napi::Value Tun::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

void Tun::OnPoll(int status, int events) {
  if (!reading_) return;
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF. For a TUN fd that happens when the
    // interface was deleted; a read() tells which errno the kernel has.
    PollStoppedByLibuv();
    uint8_t probe[1];
    ssize_t n = ::read(fd_, probe, 0);
    int err = n < 0 ? errno : 0;
    if (n < 0 && err != EAGAIN && err != EINTR) {
      Fail(err, "read");
    } else {
      Fail(EIO, "poll");
    }
    return;
  }
  if (!(events & UV_READABLE)) return;
  if (idle_on_) {
    // The idle handle takes the batches while the queue holds reads; here only read ahead.
    Fill();
    return;
  }
  Service();
}

void Tun::OnIdle(uv_idle_t* idle) {
  auto* self = static_cast<Tun*>(idle->data);
  if (self != nullptr) self->Service();
}

void Tun::UpdateIdle() {
  if (idle_ == nullptr) return;
  const bool want = reading_ && fd_ >= 0 && queue_ && !queue_->Empty();
  if (want == idle_on_) return;
  idle_on_ = want;
  if (want) {
    uv_idle_start(idle_, &Tun::OnIdle);
  } else {
    uv_idle_stop(idle_);
  }
}

bool Tun::Fill() {
  // At least one batch's worth even with a zero limit (TSGUARD_TUN_QUEUE=0: the old read-and-forward).
  for (int reads = 0; reads < kMaxReadsPerFill && (queue_->items() < static_cast<size_t>(kBatch) || !queue_->Full());) {
    FlowQueue::Item* it = queue_->Alloc();
    if (it == nullptr) {
      rx_nomem_++;
      return true;  // the packets stay in the kernel's queue until memory is back
    }
    ssize_t r = ::read(fd_, it->data(), kBufSize + kVnetHdrLen);
    if (r <= 0) {
      const int err = r < 0 ? errno : EAGAIN;
      queue_->Free(it);
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;
      Fail(err, "read");
      return false;
    }
    reads++;
    if (vnet_ && static_cast<size_t>(r) <= kVnetHdrLen) {
      rx_malformed_++;
      queue_->Free(it);
      continue;
    }
    queue_->Push(it, static_cast<uint32_t>(r), vnet_ ? kVnetHdrLen : 0);
  }
  return true;
}

uint32_t Tun::TakeBatch() {
  split_.clear();
  split_lens_.clear();
  uint32_t n = 0;
  // Packets of flows that were idle (a ping, a DNS query, a keystroke) make a batch of their own, so
  // that they leave without waiting for the crypto of a bulk flow's 128 packets.
  bool sparse = queue_->HasNew();
  for (int reads = 0; reads < kBatch && n < kMaxPackets; reads++) {
    FlowQueue::Item* it = queue_->Pop(sparse);
    if (it == nullptr && sparse && reads == 0) {
      sparse = false;  // the new flows had used their quantum: an ordinary batch
      it = queue_->Pop();
    }
    if (it == nullptr) break;
    const uint8_t* data = it->data();
    const size_t len = it->len;
    if (!vnet_) {
      split_.insert(split_.end(), data, data + len);
      split_lens_.push_back(static_cast<uint32_t>(len));
      n++;
      rx_packets_++;
      rx_bytes_ += len;
      queue_->Free(it);
      continue;
    }
    const offload::VnetHdr h = offload::DecodeVnetHdr(data);
    const size_t before = split_lens_.size();
    const bool ok = offload::GsoSplit(h, data + kVnetHdrLen, len - kVnetHdrLen, &split_, &split_lens_) ==
                    offload::SplitResult::kSplit;
    queue_->Free(it);
    if (!ok) {
      rx_malformed_++;
      continue;
    }
    if (split_lens_.size() - before > 1) rx_gso_++;
    for (size_t i = before; i < split_lens_.size(); i++) {
      n++;
      rx_packets_++;
      rx_bytes_ += split_lens_[i];
    }
  }
  return n;
}

void Tun::Service() {
  Napi::Env env = Env();
  Napi::HandleScope outer(env);
  Napi::Object self = Value();  // pins the wrapper while JS runs
  WakeStarted();
  for (int round = 0; round < kMaxBatchesPerWake; round++) {
    Napi::HandleScope scope(env);
    // Read what arrived since the last round first, so that a sparse flow's packet overtakes.
    if (!Fill()) return;
    const uint32_t n = TakeBatch();
    if (n > 0) {
      rx_batches_++;
      spans_.resize(n);
      const uint8_t* at = split_.data();
      for (uint32_t i = 0; i < n; i++) {
        spans_[i] = Span{at, split_lens_[i]};
        at += split_lens_[i];
      }
      CallJs(env, on_packets_, self, async_.get(), {PackBatch(env, spans_.data(), n), Napi::Number::New(env, n)});
      // The callback may have stopped or closed us.
      if (fd_ < 0 || !reading_) return;
    }
    if (queue_->Empty()) break;  // drained: the poll wakes us for more
    if (YieldWanted()) break;     // the idle handle brings us back after the UDP socket's turn
  }
  UpdateIdle();
}

void Tun::Fail(int err, const char* syscall) {
  if (failed_) return;
  failed_ = true;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  Napi::FunctionReference on_error = std::move(on_error_);
  StopPolling();
  Napi::Error e = IsLinkGone(err)
                      ? TunError(env, name_,
                                 "TUN interface '" + name_ + "' is gone (deleted with ip link del, or its network " +
                                     "namespace was removed): " + strerror(err),
                                 "ELINKGONE", err, syscall)
                      : TunError(env, name_, "reading TUN interface '" + name_ + "' failed: " + strerror(err),
                                 nullptr, err, syscall);
  CallJs(env, on_error, self, async_.get(), {e.Value()});
}

// writePackets(stores, views, count?): the packets are views of stores (src/util/store-table.ts).
Napi::Value Tun::WritePackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsTypedArray()) {
    return ThrowType(env, "Tun.writePackets(stores, views, count?): stores must be an array of Uint8Array, views a Uint32Array");
  }
  const size_t rows = info[1].As<Napi::TypedArray>().ElementLength() / 3;
  uint32_t count = rows > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(rows);
  if (info.Length() >= 3 && !info[2].IsUndefined()) {
    if (!info[2].IsNumber()) return ThrowType(env, "Tun.writePackets: count must be a number");
    double c = info[2].As<Napi::Number>().DoubleValue();
    if (!(c >= 0) || c > count || c != static_cast<double>(static_cast<uint32_t>(c))) {
      Napi::RangeError e = Napi::RangeError::New(env, "Tun.writePackets: count must be an integer between 0 and the views in the table");
      e.Value().Set("code", "ERR_OUT_OF_RANGE");
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    count = static_cast<uint32_t>(c);
  }
  if (!ResolveViews(env, info[0], info[1], count, "Tun.writePackets", &wptrs_, &wlens_)) return env.Undefined();
  if (fd_ < 0) {
    // Closed (e.g. while shutting down after ELINKGONE): drop, do not throw.
    tx_drops_ += count;
    return Napi::Number::New(env, 0);
  }
  uint32_t written = 0;
  if (!coalesce_ || count < 2) {
    for (uint32_t i = 0; i < count; i++) {
      int err = WriteOne(nullptr, nullptr, 0, &wptrs_[i], &wlens_[i], 1);
      CountWrite(err, 1, wlens_[i]);
      if (err == 0) written++;
    }
    return Napi::Number::New(env, written);
  }
  offload::Coalesce(wptrs_.data(), wlens_.data(), count, uso_, &units_, &next_);
  std::vector<const uint8_t*> parts;
  std::vector<size_t> part_lens;
  for (size_t k = 0; k < units_.size(); k++) {
    const offload::WriteUnit& u = units_[k];
    if (u.count == 1 || !coalesce_) {
      for (uint32_t i = u.first; i != UINT32_MAX; i = next_[i]) {
        int err = WriteOne(nullptr, nullptr, 0, &wptrs_[i], &wlens_[i], 1);
        CountWrite(err, 1, wlens_[i]);
        if (err == 0) written++;
      }
      continue;
    }
    parts.clear();
    part_lens.clear();
    for (uint32_t i = u.first; i != UINT32_MAX; i = next_[i]) {
      parts.push_back(wptrs_[i] + u.head_len);
      part_lens.push_back(wlens_[i] - u.head_len);
    }
    int err = WriteOne(&u.hdr, u.head, u.head_len, parts.data(), part_lens.data(), static_cast<uint32_t>(parts.size()));
    if (err == EINVAL) {
      // This kernel refuses coalesced writes (Linux 6.6.44 did): write plain packets from now on.
      coalesce_ = false;
      k--;
      continue;
    }
    CountWrite(err, u.count, u.total);
    if (err == 0) {
      written += u.count;
      tx_coalesced_++;
    }
  }
  return Napi::Number::New(env, written);
}

int Tun::WriteOne(const offload::VnetHdr* hdr, const uint8_t* head, size_t head_len, const uint8_t* const* parts,
                  const size_t* part_lens, uint32_t nparts) {
  uint8_t vh[kVnetHdrLen];
  iovec iov[offload::kMaxCoalesce + 2];
  int n = 0;
  if (vnet_) {
    if (hdr != nullptr) {
      offload::EncodeVnetHdr(*hdr, vh);
    } else {
      std::memset(vh, 0, sizeof vh);
    }
    iov[n++] = iovec{vh, sizeof vh};
  }
  if (head_len > 0) iov[n++] = iovec{const_cast<uint8_t*>(head), head_len};
  for (uint32_t i = 0; i < nparts && i < offload::kMaxCoalesce; i++) {
    iov[n++] = iovec{const_cast<uint8_t*>(parts[i]), part_lens[i]};
  }
  for (;;) {
    ssize_t r = ::writev(fd_, iov, n);
    if (r >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

void Tun::CountWrite(int err, uint32_t packets, size_t bytes) {
  if (err == 0) {
    tx_packets_ += packets;
    tx_bytes_ += bytes;
  } else if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
    tx_drops_ += packets;
  } else {
    // EINVAL (not an IP packet), EBADFD (interface deleted; reported by the reader), EIO...:
    // count, never throw.
    tx_errors_ += packets;
    last_tx_errno_ = err;
  }
}

Napi::Value Tun::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("rxPackets", Napi::Number::New(env, static_cast<double>(rx_packets_)));
  o.Set("rxBytes", Napi::Number::New(env, static_cast<double>(rx_bytes_)));
  o.Set("rxBatches", Napi::Number::New(env, static_cast<double>(rx_batches_)));
  o.Set("txPackets", Napi::Number::New(env, static_cast<double>(tx_packets_)));
  o.Set("txBytes", Napi::Number::New(env, static_cast<double>(tx_bytes_)));
  o.Set("txDrops", Napi::Number::New(env, static_cast<double>(tx_drops_)));
  o.Set("txErrors", Napi::Number::New(env, static_cast<double>(tx_errors_)));
  o.Set("rxGsoPackets", Napi::Number::New(env, static_cast<double>(rx_gso_)));
  o.Set("rxMalformed", Napi::Number::New(env, static_cast<double>(rx_malformed_)));
  o.Set("txCoalesced", Napi::Number::New(env, static_cast<double>(tx_coalesced_)));
  o.Set("rxQueueBytes", Napi::Number::New(env, queue_ ? static_cast<double>(queue_->bytes()) : 0));
  o.Set("rxQueuePeakBytes", Napi::Number::New(env, queue_ ? static_cast<double>(queue_->peak_bytes()) : 0));
  o.Set("rxNoMemory", Napi::Number::New(env, static_cast<double>(rx_nomem_)));
  std::string offloads = !vnet_ ? "off" : uso_ ? "tso,uso" : tso_ ? "tso" : "vnet";
  if (vnet_ && !coalesce_) offloads += ",no-coalesce";
  o.Set("offloads", Napi::String::New(env, offloads));
  if (last_tx_errno_ != 0) {
    o.Set("lastTxError", Napi::String::New(env, ErrnoName(last_tx_errno_)));
  } else {
    o.Set("lastTxError", env.Null());
  }
  return o;
}

void Tun::CloseAll() {
  ClosePoll();
  reading_ = false;
  if (idle_ != nullptr) {
    uv_idle_stop(idle_);
    idle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    idle_ = nullptr;
    idle_on_ = false;
  }
  queue_.reset();
}

Napi::Value Tun::Close(const Napi::CallbackInfo& info) {
  CloseAll();
  on_packets_.Reset();
  on_error_.Reset();
  // async_ stays until the destructor: close() may run inside a callback that uses it.
  Unpin();
  return info.Env().Undefined();
}

}  // namespace tsg
