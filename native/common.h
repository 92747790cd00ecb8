// Shared helpers for the tsguard native addon: error objects, safe callbacks
// into JavaScript from libuv callbacks, and small fd utilities.
//
// The addon is built with NAPI_DISABLE_CPP_EXCEPTIONS: every function that
// throws into JavaScript does so with ThrowAsJavaScriptException() and
// returns immediately.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tsg {

// Name of an errno value ("EAGAIN"), or "E<number>" when unknown.
std::string ErrnoName(int err);

// An Error with Node-like properties: `.code` (errno name unless `code` is
// given), `.errno` (positive OS errno, omitted when err == 0) and `.syscall`
// (omitted when null). The message is used as is.
Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code, int err,
                      const char* syscall);

// Throws a TypeError with `.code = 'ERR_INVALID_ARG_TYPE'` (or the given
// code) and returns undefined, for `return ThrowType(...)` one-liners.
Napi::Value ThrowType(Napi::Env env, const std::string& message,
                      const char* code = "ERR_INVALID_ARG_TYPE");

// Calls `fn` with `args` through napi_make_callback (so nextTick/microtask
// queues are drained as for any I/O callback). When the callback throws, the
// exception is re-raised as an uncaught exception (napi_fatal_exception) so
// that it is reported like one thrown from any Node I/O callback, and false
// is returned. Must be called inside a HandleScope.
bool CallJs(Napi::Env env, const Napi::FunctionReference& fn, napi_value recv,
            Napi::AsyncContext* ctx, std::initializer_list<napi_value> args);

// One packet of a batch for PackBatch.
struct Span {
  const uint8_t* data;
  uint32_t len;
};

// A batch of packets for one JavaScript callback as one Buffer: `count` uint32 lengths (native byte
// order), then the packets back to back (JavaScript cuts views from it: src/io/packet-batch.ts).
// One allocation per batch instead of one Buffer per packet, not zero-filled (all of it is written).
Napi::Buffer<uint8_t> PackBatch(Napi::Env env, const Span* spans, size_t count);

// Packets given as views of a few stores (src/util/store-table.ts): `stores` a JS array of
// Uint8Arrays, `views` a Uint32Array of (store index, byte offset, length) per packet. Resolves the
// first `count` into ptrs/lens; on a wrong type or a range outside its store it throws a TypeError or
// RangeError naming `what` and returns false (nothing resolved is used then).
bool ResolveViews(Napi::Env env, const Napi::Value& stores, const Napi::Value& views, uint32_t count, const char* what,
                  std::vector<const uint8_t*>* ptrs, std::vector<size_t>* lens);

// Throws a RangeError with `.code = code` and returns undefined.
Napi::Value ThrowRange(Napi::Env env, const std::string& message, const char* code = "ERR_OUT_OF_RANGE");

// A byte count from environment variable `name` (decimal, 0 ≤ n ≤ max), or `def` when it is unset,
// empty or not such a count (a tuning knob: a typo keeps the default rather than failing the device).
long EnvBytes(const char* name, long def, long max);

// The libuv loop of this environment.
uv_loop_t* GetLoop(Napi::Env env);

// Extracts bytes from a Buffer / Uint8Array / any ArrayBufferView. Returns
// false when the value is none of those.
bool GetBytes(Napi::Env env, napi_value value, const uint8_t** data, size_t* len);

// A Uint8Array (or Buffer) argument: its bytes, writable. False for anything else. The crypto
// functions accept only these, so that their inputs and outputs are exactly the arrays passed.
bool GetUint8Array(const Napi::Value& value, uint8_t** data, size_t* len);

// What is wrong with the length of interface name `name` ("" when it has 1 to IFNAMSIZ - 1 bytes),
// e.g. "it is 17 bytes long, Linux allows at most 15 (IFNAMSIZ - 1)"; *code is then "EINVAL" (empty)
// or "ENAMETOOLONG".
std::string IfNameLengthProblem(const std::string& name, const char** code);

// close(fd) ignoring the result (no EINTR retry: on Linux the fd is released
// even when close() fails).
void CloseFd(int fd);

}  // namespace tsg
