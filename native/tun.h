// Linux TUN interface (IFF_TUN | IFF_NO_PI) driven by a libuv poll handle.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

namespace tsg {

class Tun : public Napi::ObjectWrap<Tun> {
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
  Napi::Value RefHandle(const Napi::CallbackInfo& info);
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  void ReadBatches();
  // Stops reading and reports a fatal error to the error callback.
  void Fail(int err, const char* syscall);
  void StopPolling();
  void CloseAll();

  int fd_ = -1;
  std::string name_;
  uv_poll_t* poll_ = nullptr;
  bool reading_ = false;
  bool self_ref_ = false;
  bool failed_ = false;
  std::unique_ptr<uint8_t[]> buf_;
  Napi::FunctionReference on_packets_;
  Napi::FunctionReference on_error_;
  std::unique_ptr<Napi::AsyncContext> async_;

  uint64_t rx_packets_ = 0, rx_bytes_ = 0, rx_batches_ = 0;
  uint64_t tx_packets_ = 0, tx_bytes_ = 0, tx_drops_ = 0, tx_errors_ = 0;
  int last_tx_errno_ = 0;
};

}  // namespace tsg
