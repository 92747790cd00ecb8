// One base for the addon's fd-backed objects (Tun, Udp): a uv_poll_t on the fd, its events, the
// reference that keeps the JS wrapper alive while the loop may call into it, ref/unref of the
// handle, and closing both. T implements `void OnPoll(int status, int events)`.
#pragma once

#include <napi.h>
#include <uv.h>

#include <poll.h>

#include "common.h"

namespace tsg {

// A wake's share of the loop before it gives way to the other direction (yieldTo). Every batch (0)
// halved the ping under a bulk transfer but cost up to 16 % of its throughput here, because the
// other side's batches get smaller; 0.5 ms (two or three batches) keeps the ping and costs less
// (bench/README.md, step 8).
constexpr uint64_t kTurnNs = 500'000;

template <class T>
class PollHandle : public Napi::ObjectWrap<T> {
 protected:
  explicit PollHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {}
  ~PollHandle() override { ClosePoll(); }

  // Watches `fd` (which this object then owns) with libuv. Returns 0 or a libuv error; on an error
  // the fd is left open for the caller to close.
  int InitPoll(Napi::Env env, int fd) {
    poll_ = new uv_poll_t;
    int r = uv_poll_init(GetLoop(env), poll_, fd);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      return r;
    }
    poll_->data = this;
    fd_ = fd;
    return 0;
  }

  // Arms the poll for `events` (UV_READABLE | UV_WRITABLE; 0 stops it). Returns 0 or a libuv error.
  int SetPollEvents(int events) {
    if (poll_ == nullptr) return 0;
    if (events == poll_events_) return 0;
    poll_events_ = events;
    if (events == 0) return uv_poll_stop(poll_);
    return uv_poll_start(poll_, events, &PollHandle::Dispatch);
  }
  // After libuv reported an error it has stopped the handle: the next SetPollEvents re-arms it.
  void PollStoppedByLibuv() { poll_events_ = 0; }

  // Keeps the JS wrapper alive while reading (the loop calls into it), and lets it go.
  void Pin() {
    if (pinned_) return;
    pinned_ = true;
    this->Ref();
  }
  void Unpin() {
    if (!pinned_) return;
    pinned_ = false;
    this->Unref();
  }

  // Stops and closes the poll handle and the fd. Idempotent.
  void ClosePoll() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    poll_events_ = 0;
    if (fd_ >= 0) {
      CloseFd(fd_);
      fd_ = -1;
    }
  }

  bool HasPoll() const { return poll_ != nullptr; }

  // Marks the start of a wake's rounds (for YieldWanted's budget).
  void WakeStarted() { wake_start_ = uv_hrtime(); }

  // Whether this wake has had its time (kTurnNs) and the other direction's fd (yieldTo) has input
  // waiting: then the wake's rounds end early, so that the loop serves it before this handle's next
  // batch (one poll() with zero timeout per round once the time is used).
  bool YieldWanted() const {
    if (yield_fd_ < 0) return false;
    if (uv_hrtime() - wake_start_ < kTurnNs) return false;
    pollfd p{yield_fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
  }

  // The class property "yieldTo" for DefineClass.
  static Napi::ClassPropertyDescriptor<T> YieldToMethod() {
    using Method = Napi::Value (T::*)(const Napi::CallbackInfo&);
    return Napi::ObjectWrap<T>::InstanceMethod("yieldTo", static_cast<Method>(&PollHandle::YieldTo));
  }

  // JS: yieldTo(fd) — the fd whose input ends a wake's rounds early; -1 for none.
  Napi::Value YieldTo(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(info.Env(), "yieldTo(fd: number)");
    const int fd = info[0].As<Napi::Number>().Int32Value();
    yield_fd_ = fd >= 0 ? fd : -1;
    return info.Env().Undefined();
  }

  // The class properties "ref" and "unref" for DefineClass.
  static Napi::ClassPropertyDescriptor<T> RefMethod() {
    using Method = Napi::Value (T::*)(const Napi::CallbackInfo&);
    return Napi::ObjectWrap<T>::InstanceMethod("ref", static_cast<Method>(&PollHandle::RefHandle));
  }
  static Napi::ClassPropertyDescriptor<T> UnrefMethod() {
    using Method = Napi::Value (T::*)(const Napi::CallbackInfo&);
    return Napi::ObjectWrap<T>::InstanceMethod("unref", static_cast<Method>(&PollHandle::UnrefHandle));
  }

  // JS: ref() / unref() of the handle (whether it keeps the event loop alive).
  Napi::Value RefHandle(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  int fd_ = -1;
  int yield_fd_ = -1;
  uint64_t wake_start_ = 0;

 private:
  static void Dispatch(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<PollHandle*>(handle->data);
    if (self == nullptr || self->fd_ < 0) return;
    static_cast<T*>(self)->OnPoll(status, events);
  }

  uv_poll_t* poll_ = nullptr;
  int poll_events_ = 0;
  bool pinned_ = false;
};

}  // namespace tsg
