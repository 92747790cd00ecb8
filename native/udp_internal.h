// Limits and helpers shared by the parts of Udp (udp_socket.cc, udp_recv.cc, udp_send.cc).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h, Linux ≥ 4.18
#endif
#ifndef UDP_GRO
#define UDP_GRO 104  // linux/udp.h, Linux ≥ 5.0
#endif

namespace tsg {
namespace udp {

constexpr unsigned kBatch = 64;           // messages per recvmmsg / JS callback (a GRO message holds several datagrams)
constexpr uint32_t kMaxPerCallback = 128; // datagrams per JS callback at most
constexpr int kMaxBatchesPerWake = 8;     // then yield to the loop (level-triggered)
constexpr size_t kSlot = 65536;           // > largest UDP payload (65507 / 65527), and a whole GRO message
constexpr unsigned kMaxSendChunk = 1024;  // UIO_MAXIOV: sendmmsg's vlen limit
constexpr size_t kMaxQueue = 1024;        // datagrams kept while the socket is full
constexpr size_t kMaxPendingErrors = 64;  // send errors kept for the JS callback
constexpr uint32_t kMaxGsoSegments = 64;  // datagrams per UDP GSO message (the kernel's UDP_MAX_SEGMENTS is 64 or more)
constexpr size_t kMaxGsoBytes = 65000;    // payload bytes per UDP GSO message (< 64 KiB with headers)
constexpr size_t kMaxDeadSources = 16;    // removed local addresses remembered (oldest forgotten first)

// ICMP errors surfacing on the socket, memory pressure: not fatal for a receive.
inline bool IsTransientRecvError(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN ||
         err == ENOMEM || err == ENOBUFS || err == EPERM || err == ECONNRESET || err == EMSGSIZE;
}

}  // namespace udp
}  // namespace tsg
