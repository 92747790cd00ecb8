// tsguard native addon: TUN interfaces and batched UDP sockets for Linux, small interface
// helpers, and OpenSSL primitives (ChaCha20-Poly1305, X25519, BLAKE2s) for the native crypto
// provider. It parses no WireGuard messages: the protocol stays in TypeScript.
#include <napi.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aead.h"
#include "endpoint.h"
#include "hscrypto.h"
#include "noise_steps.h"
#include "common.h"
#include "flow_queue.h"
#include "offload.h"
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
  const char* code = nullptr;
  const std::string problem = IfNameLengthProblem(*name, &code);
  if (!problem.empty()) {
    MakeError(env, std::string(fn) + ": invalid interface name '" + *name + "': " + problem, code, 0, nullptr)
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

// Runs ioctl(request) on a socket of `family` (0: any that opens); on failure throws
// "<fn>: cannot <what> on '<name>': <error>" (plus `einval_hint` for EINVAL) and returns false.
bool IfIoctl(Napi::Env env, int family, unsigned long request, void* arg, const char* fn, const std::string& what,
             const std::string& name, const char* syscall, const char* einval_hint = nullptr) {
  int fd = family == 0 ? IoctlSocket() : ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    std::string msg = std::string(fn) + ": socket() failed: " + strerror(err);
    if (family == AF_INET6 && err == EAFNOSUPPORT) msg += " (IPv6 is disabled on this host)";
    MakeError(env, msg, nullptr, err, "socket").ThrowAsJavaScriptException();
    return false;
  }
  int r = ::ioctl(fd, request, arg);
  int err = errno;
  CloseFd(fd);
  if (r < 0) {
    std::string msg = std::string(fn) + ": cannot " + what + " on '" + name + "': " + strerror(err);
    if (err == EPERM || err == EACCES) msg += ". This needs root or CAP_NET_ADMIN";
    if (err == EEXIST) msg += " (the interface already has it)";
    if (err == EINVAL && einval_hint != nullptr) msg += einval_hint;
    MakeError(env, msg, nullptr, err, syscall).ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// getMtu(name): number
Napi::Value GetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "getMtu", &name)) return env.Undefined();
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (!IfIoctl(env, 0, SIOCGIFMTU, &ifr, "getMtu", "read the MTU", name, "ioctl(SIOCGIFMTU)")) return env.Undefined();
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
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_mtu = static_cast<int>(m);
  IfIoctl(env, 0, SIOCSIFMTU, &ifr, "setMtu", "set the MTU to " + std::to_string(static_cast<int>(m)), name,
          "ioctl(SIOCSIFMTU)", " (out of the range this interface accepts)");
  return env.Undefined();
}

// The kernel's struct in6_ifreq (linux/ipv6.h clashes with netinet/in.h).
struct In6Ifreq {
  in6_addr addr;
  uint32_t prefixlen;
  int ifindex;
};

// addAddress(name, address: 4- or 16-byte Uint8Array, prefixLength): void. IPv4 becomes the
// interface's address with that netmask (SIOCSIFADDR + SIOCSIFNETMASK; on a new interface, the same
// as `ip address add`); IPv6 is added (SIOCSIFADDR on an IPv6 socket).
Napi::Value AddAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "addAddress", &name)) return env.Undefined();
  uint8_t* addr;
  size_t len;
  if (info.Length() < 3 || !GetUint8Array(info[1], &addr, &len) || (len != 4 && len != 16) || !info[2].IsNumber()) {
    return ThrowType(env, "addAddress(name, address: 4- or 16-byte Uint8Array, prefixLength: number)");
  }
  const int bits = info[2].As<Napi::Number>().Int32Value();
  if (bits < 0 || bits > static_cast<int>(len * 8)) {
    Napi::RangeError e = Napi::RangeError::New(env, "addAddress: prefix length out of range for the address family");
    e.Value().Set("code", "ERR_OUT_OF_RANGE");
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (len == 4) {
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, addr, 4);
    if (!IfIoctl(env, AF_INET, SIOCSIFADDR, &ifr, "addAddress", "set the IPv4 address", name, "ioctl(SIOCSIFADDR)")) {
      return env.Undefined();
    }
    const uint32_t mask = bits == 0 ? 0 : htonl(~uint32_t{0} << (32 - bits));
    auto* nm = reinterpret_cast<sockaddr_in*>(&ifr.ifr_netmask);
    nm->sin_family = AF_INET;
    std::memcpy(&nm->sin_addr, &mask, 4);
    IfIoctl(env, AF_INET, SIOCSIFNETMASK, &ifr, "addAddress", "set the IPv4 netmask", name, "ioctl(SIOCSIFNETMASK)");
    return env.Undefined();
  }
  In6Ifreq r6;
  std::memset(&r6, 0, sizeof r6);
  std::memcpy(&r6.addr, addr, 16);
  r6.prefixlen = static_cast<uint32_t>(bits);
  r6.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (r6.ifindex == 0) {
    int err = errno;
    MakeError(env, "addAddress: no interface named '" + name + "'", "ENODEV", err, "if_nametoindex").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  IfIoctl(env, AF_INET6, SIOCSIFADDR, &r6, "addAddress", "add the IPv6 address", name, "ioctl(SIOCSIFADDR)");
  return env.Undefined();
}

// setUp(name): void — sets IFF_UP (like `ip link set NAME up`).
Napi::Value SetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "setUp", &name)) return env.Undefined();
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (!IfIoctl(env, AF_INET, SIOCGIFFLAGS, &ifr, "setUp", "read the flags", name, "ioctl(SIOCGIFFLAGS)")) return env.Undefined();
  if (ifr.ifr_flags & IFF_UP) return env.Undefined();
  ifr.ifr_flags |= IFF_UP;
  IfIoctl(env, AF_INET, SIOCSIFFLAGS, &ifr, "setUp", "bring the interface up", name, "ioctl(SIOCSIFFLAGS)");
  return env.Undefined();
}

// ifIndex(name): number (0 when there is no such interface)
Napi::Value IfIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, "ifIndex", &name)) return env.Undefined();
  return Napi::Number::New(env, if_nametoindex(name.c_str()));
}

// Test-only entry points to the offload functions (native/offload.h), over copies of the buffers.

// _gsoSplit(read: Uint8Array = virtio_net_hdr + packet): Buffer[] (the packets it stands for), or
// null when the header does not describe the packet.
Napi::Value GsoSplitForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t len;
  if (info.Length() < 1 || !GetUint8Array(info[0], &data, &len) || len < offload::kVnetHdrLen) {
    return ThrowType(env, "_gsoSplit(read: Uint8Array of at least 10 bytes)");
  }
  std::vector<uint8_t> out;
  std::vector<uint32_t> lens;
  if (offload::GsoSplit(offload::DecodeVnetHdr(data), data + offload::kVnetHdrLen, len - offload::kVnetHdrLen, &out,
                        &lens) != offload::SplitResult::kSplit) {
    return env.Null();
  }
  Napi::Array r = Napi::Array::New(env, lens.size());
  size_t at = 0;
  for (size_t i = 0; i < lens.size(); i++) {
    r.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, out.data() + at, lens[i]));
    at += lens[i];
  }
  return r;
}

// _groCoalesce(packets: Uint8Array[], udp: boolean): Buffer[], one per write: virtio_net_hdr + bytes.
Napi::Value GroCoalesceForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowType(env, "_groCoalesce(packets: Uint8Array[], udp?: boolean)");
  Napi::Array arr = info[0].As<Napi::Array>();
  const bool udp = info.Length() >= 2 && info[1].ToBoolean().Value();
  const uint32_t n = arr.Length();
  std::vector<const uint8_t*> ptrs(n);
  std::vector<size_t> lens(n);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t* d;
    if (!GetUint8Array(arr.Get(i), &d, &lens[i])) return ThrowType(env, "_groCoalesce: packets must be Uint8Arrays");
    ptrs[i] = d;
  }
  std::vector<offload::WriteUnit> units;
  std::vector<uint32_t> next;
  offload::Coalesce(ptrs.data(), lens.data(), n, udp, &units, &next);
  Napi::Array r = Napi::Array::New(env, units.size());
  for (size_t k = 0; k < units.size(); k++) {
    const offload::WriteUnit& u = units[k];
    std::vector<uint8_t> w(offload::kVnetHdrLen);
    offload::EncodeVnetHdr(u.hdr, w.data());
    if (u.count == 1) {
      w.insert(w.end(), ptrs[u.first], ptrs[u.first] + lens[u.first]);
    } else {
      w.insert(w.end(), u.head, u.head + u.head_len);
      for (uint32_t i = u.first; i != UINT32_MAX; i = next[i]) w.insert(w.end(), ptrs[i] + u.head_len, ptrs[i] + lens[i]);
    }
    r.Set(static_cast<uint32_t>(k), Napi::Buffer<uint8_t>::Copy(env, w.data(), w.size()));
  }
  return r;
}

// _flowSchedule(ops: (Uint8Array | number)[], seed: number): number[]. A packet pushes a
// copy of it (tagged with its index among the pushes) into a FlowQueue (native/flow_queue.h), a
// number n pops up to n items; then the rest is popped. Returns the tags in the order popped.
Napi::Value FlowScheduleForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber()) {
    return ThrowType(env, "_flowSchedule(ops: (Uint8Array | number)[], seed: number)");
  }
  Napi::Array ops = info[0].As<Napi::Array>();
  const uint32_t seed = info[1].As<Napi::Number>().Uint32Value();
  FlowQueue q(SIZE_MAX, 65536, seed);
  std::vector<double> out;
  uint64_t pushed = 0;
  auto pop = [&](double n) {
    for (double i = 0; i < n; i++) {
      FlowQueue::Item* it = q.Pop();
      if (it == nullptr) return;
      out.push_back(static_cast<double>(it->tag));
      q.Free(it);
    }
  };
  for (uint32_t k = 0; k < ops.Length(); k++) {
    Napi::Value op = ops.Get(k);
    if (op.IsNumber()) {
      pop(op.As<Napi::Number>().DoubleValue());
      continue;
    }
    uint8_t* d;
    size_t len;
    if (!GetUint8Array(op, &d, &len) || len > 65536) return ThrowType(env, "_flowSchedule: packets must be Uint8Arrays of ≤ 65536 bytes");
    FlowQueue::Item* it = q.Alloc();
    if (it == nullptr) return ThrowRange(env, "_flowSchedule: out of memory", "ENOMEM");
    std::memcpy(it->data(), d, len);
    it->tag = pushed++;
    q.Push(it, static_cast<uint32_t>(len), 0);
  }
  pop(INFINITY);
  Napi::Array r = Napi::Array::New(env, out.size());
  for (size_t i = 0; i < out.size(); i++) r.Set(static_cast<uint32_t>(i), Napi::Number::New(env, out[i]));
  return r;
}

// _flowBucket(packet: Uint8Array, seed: number): number — the FlowQueue bucket of an IP packet.
Napi::Value FlowBucketForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* d;
  size_t len;
  if (info.Length() < 2 || !GetUint8Array(info[0], &d, &len) || !info[1].IsNumber()) {
    return ThrowType(env, "_flowBucket(packet: Uint8Array, seed: number)");
  }
  FlowQueue q(0, 0, info[1].As<Napi::Number>().Uint32Value());
  return Napi::Number::New(env, q.Bucket(d, len));
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
  exports.Set("addAddress", Napi::Function::New<AddAddress>(env, "addAddress"));
  exports.Set("setUp", Napi::Function::New<SetUp>(env, "setUp"));
  exports.Set("_gsoSplit", Napi::Function::New<GsoSplitForTest>(env, "_gsoSplit"));
  exports.Set("_groCoalesce", Napi::Function::New<GroCoalesceForTest>(env, "_groCoalesce"));
  exports.Set("_flowSchedule", Napi::Function::New<FlowScheduleForTest>(env, "_flowSchedule"));
  exports.Set("_flowBucket", Napi::Function::New<FlowBucketForTest>(env, "_flowBucket"));
  InitEndpoint(env, exports);
  InitAead(env, exports);
  if (KeyPool* pool = InitHandshakeCrypto(env, exports)) InitNoiseSteps(env, exports, pool);
  return exports;
}

NODE_API_MODULE(tsguard_native, InitAddon)
