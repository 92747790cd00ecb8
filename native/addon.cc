// tsguard native addon: TUN interfaces and batched UDP sockets for Linux,
// plus small interface helpers. Deliberately protocol-agnostic.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aead.h"
#include "hscrypto.h"
#include "common.h"
#include "tun.h"
#include "udp.h"

namespace tsg {
namespace {

bool GetIfName(const Napi::CallbackInfo& info, const char* fn, std::string* name) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowType(env, std::string(fn) + ": the interface name must be a string");
    return false;
  }
  *name = info[0].As<Napi::String>().Utf8Value();
  if (name->empty() || name->size() >= IFNAMSIZ) {
    MakeError(env, std::string(fn) + ": invalid interface name '" + *name + "' (1 to " + std::to_string(IFNAMSIZ - 1) +
                       " bytes)",
              name->empty() ? "EINVAL" : "ENAMETOOLONG", 0, nullptr)
        .ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

int IoctlSocket() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return fd;
}

// getMtu(name): number
Napi::Value GetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "getMtu", &name)) return env.Undefined();
  int fd = IoctlSocket();
  if (fd < 0) {
    int err = errno;
    MakeError(env, std::string("getMtu: socket() failed: ") + strerror(err), nullptr, err, "socket")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  int r = ::ioctl(fd, SIOCGIFMTU, &ifr);
  int err = errno;
  CloseFd(fd);
  if (r < 0) {
    MakeError(env, "getMtu: cannot read the MTU of '" + name + "': " + strerror(err), nullptr, err,
              "ioctl(SIOCGIFMTU)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, ifr.ifr_mtu);
}

// setMtu(name, mtu): void
Napi::Value SetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "setMtu", &name)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsNumber()) return ThrowType(env, "setMtu(name, mtu): mtu must be a number");
  double m = info[1].As<Napi::Number>().DoubleValue();
  if (!(m >= 0 && m <= 2147483647.0) || m != static_cast<double>(static_cast<int>(m))) {
    Napi::RangeError e = Napi::RangeError::New(env, "setMtu: mtu must be a non-negative integer");
    e.Value().Set("code", "ERR_OUT_OF_RANGE");
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = IoctlSocket();
  if (fd < 0) {
    int err = errno;
    MakeError(env, std::string("setMtu: socket() failed: ") + strerror(err), nullptr, err, "socket")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_mtu = static_cast<int>(m);
  int r = ::ioctl(fd, SIOCSIFMTU, &ifr);
  int err = errno;
  CloseFd(fd);
  if (r < 0) {
    std::string msg = "setMtu: cannot set the MTU of '" + name + "' to " + std::to_string(static_cast<int>(m)) + ": " +
                      strerror(err);
    if (err == EPERM || err == EACCES) msg += ". This needs root or CAP_NET_ADMIN";
    if (err == EINVAL) msg += " (out of the range this interface accepts)";
    MakeError(env, msg, nullptr, err, "ioctl(SIOCSIFMTU)").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// ifIndex(name): number (0 when there is no such interface)
Napi::Value IfIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "ifIndex", &name)) return env.Undefined();
  return Napi::Number::New(env, if_nametoindex(name.c_str()));
}

}  // namespace
}  // namespace tsg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace tsg;
  exports.Set("Tun", Tun::Init(env));
  exports.Set("UdpSocket", Udp::Init(env));
  exports.Set("getMtu", Napi::Function::New<GetMtu>(env, "getMtu"));
  exports.Set("setMtu", Napi::Function::New<SetMtu>(env, "setMtu"));
  exports.Set("ifIndex", Napi::Function::New<IfIndex>(env, "ifIndex"));
  InitAead(env, exports);
  InitHandshakeCrypto(env, exports);
  return exports;
}

NODE_API_MODULE(tsguard_native, InitAddon)
