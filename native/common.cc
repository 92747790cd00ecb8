#include "common.h"

#include <cstdlib>
#include <cstring>

#include <cerrno>

#include <net/if.h>
#include <unistd.h>

namespace tsg {

std::string ErrnoName(int err) {
  switch (err) {
#define TSG_ERRNO(e) \
  case e:            \
    return #e;
    TSG_ERRNO(EPERM)
    TSG_ERRNO(ENOENT)
    TSG_ERRNO(EINTR)
    TSG_ERRNO(EIO)
    TSG_ERRNO(ENXIO)
    TSG_ERRNO(E2BIG)
    TSG_ERRNO(EBADF)
    TSG_ERRNO(EAGAIN)
    TSG_ERRNO(ENOMEM)
    TSG_ERRNO(EACCES)
    TSG_ERRNO(EFAULT)
    TSG_ERRNO(EBUSY)
    TSG_ERRNO(EEXIST)
    TSG_ERRNO(ENODEV)
    TSG_ERRNO(ENOTDIR)
    TSG_ERRNO(EINVAL)
    TSG_ERRNO(ENFILE)
    TSG_ERRNO(EMFILE)
    TSG_ERRNO(ENOTTY)
    TSG_ERRNO(ENOSPC)
    TSG_ERRNO(EPIPE)
    TSG_ERRNO(ERANGE)
    TSG_ERRNO(ENAMETOOLONG)
    TSG_ERRNO(ENOSYS)
    TSG_ERRNO(EBADFD)
    TSG_ERRNO(ENOTSOCK)
    TSG_ERRNO(EDESTADDRREQ)
    TSG_ERRNO(EMSGSIZE)
    TSG_ERRNO(EPROTOTYPE)
    TSG_ERRNO(ENOPROTOOPT)
    TSG_ERRNO(EPROTONOSUPPORT)
    TSG_ERRNO(EOPNOTSUPP)
    TSG_ERRNO(EAFNOSUPPORT)
    TSG_ERRNO(EADDRINUSE)
    TSG_ERRNO(EADDRNOTAVAIL)
    TSG_ERRNO(ENETDOWN)
    TSG_ERRNO(ENETUNREACH)
    TSG_ERRNO(ENETRESET)
    TSG_ERRNO(ECONNABORTED)
    TSG_ERRNO(ECONNRESET)
    TSG_ERRNO(ENOBUFS)
    TSG_ERRNO(EISCONN)
    TSG_ERRNO(ENOTCONN)
    TSG_ERRNO(ETIMEDOUT)
    TSG_ERRNO(ECONNREFUSED)
    TSG_ERRNO(EHOSTDOWN)
    TSG_ERRNO(EHOSTUNREACH)
    TSG_ERRNO(EALREADY)
    TSG_ERRNO(EINPROGRESS)
    TSG_ERRNO(ENOMEDIUM)
    TSG_ERRNO(EKEYEXPIRED)
#undef TSG_ERRNO
    default:
      return "E" + std::to_string(err);
  }
}

Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code, int err,
                      const char* syscall) {
  Napi::Error e = Napi::Error::New(env, message);
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, code != nullptr ? std::string(code) : ErrnoName(err)));
  if (err != 0) o.Set("errno", Napi::Number::New(env, err));
  if (syscall != nullptr) o.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

Napi::Value ThrowType(Napi::Env env, const std::string& message, const char* code) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Value().Set("code", Napi::String::New(env, code));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool CallJs(Napi::Env env, const Napi::FunctionReference& fn, napi_value recv,
            Napi::AsyncContext* ctx, std::initializer_list<napi_value> args) {
  if (fn.IsEmpty()) return true;
  napi_value result;
  napi_status status = napi_make_callback(env, ctx != nullptr ? static_cast<napi_async_context>(*ctx) : nullptr,
                                          recv, fn.Value(), args.size(), args.begin(), &result);
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  return false;
}

Napi::Buffer<uint8_t> PackBatch(Napi::Env env, const Span* spans, size_t count) {
  size_t bytes = count * sizeof(uint32_t);
  for (size_t i = 0; i < count; i++) bytes += spans[i].len;
  Napi::Buffer<uint8_t> ab = Napi::Buffer<uint8_t>::New(env, bytes);
  uint8_t* base = ab.Data();
  uint8_t* at = base + count * sizeof(uint32_t);
  for (size_t i = 0; i < count; i++) {
    std::memcpy(base + i * sizeof(uint32_t), &spans[i].len, sizeof(uint32_t));
    std::memcpy(at, spans[i].data, spans[i].len);
    at += spans[i].len;
  }
  return ab;
}

bool ResolveViews(Napi::Env env, const Napi::Value& stores, const Napi::Value& views, uint32_t count, const char* what,
                  std::vector<const uint8_t*>* ptrs, std::vector<size_t>* lens) {
  if (!stores.IsArray() || !views.IsTypedArray() || views.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowType(env, std::string(what) + ": stores must be an array of Uint8Array and views a Uint32Array");
    return false;
  }
  Napi::Array arr = stores.As<Napi::Array>();
  Napi::Uint32Array table = views.As<Napi::Uint32Array>();
  if (static_cast<uint64_t>(count) * 3 > table.ElementLength()) {
    ThrowRange(env, std::string(what) + ": count exceeds the views table");
    return false;
  }
  const uint32_t n_stores = arr.Length();
  std::vector<Span> spans(n_stores);
  for (uint32_t k = 0; k < n_stores; k++) {
    uint8_t* p;
    size_t len;
    if (!GetUint8Array(arr.Get(k), &p, &len) || len > UINT32_MAX) {
      ThrowType(env, std::string(what) + ": stores[" + std::to_string(k) + "] is not a Uint8Array (< 4 GiB)");
      return false;
    }
    spans[k] = Span{p, static_cast<uint32_t>(len)};
  }
  ptrs->resize(count);
  lens->resize(count);
  const uint32_t* row = table.Data();
  for (uint32_t i = 0; i < count; i++, row += 3) {
    if (row[0] >= n_stores || static_cast<uint64_t>(row[1]) + row[2] > spans[row[0]].len) {
      ThrowRange(env, std::string(what) + ": view " + std::to_string(i) + " is outside its store");
      return false;
    }
    (*ptrs)[i] = spans[row[0]].data + row[1];
    (*lens)[i] = row[2];
  }
  return true;
}

Napi::Value ThrowRange(Napi::Env env, const std::string& message, const char* code) {
  Napi::RangeError e = Napi::RangeError::New(env, message);
  e.Value().Set("code", Napi::String::New(env, code));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

uv_loop_t* GetLoop(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  return loop;
}

bool GetUint8Array(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  *data = u.Data();
  *len = u.ByteLength();
  return true;
}

bool GetBytes(Napi::Env env, napi_value value, const uint8_t** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, value, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length;
    void* ptr;
    if (napi_get_typedarray_info(env, value, &type, &length, &ptr, nullptr, nullptr) != napi_ok) return false;
    size_t elem = 1;
    switch (type) {
      case napi_int8_array:
      case napi_uint8_array:
      case napi_uint8_clamped_array:
        elem = 1;
        break;
      case napi_int16_array:
      case napi_uint16_array:
        elem = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        elem = 4;
        break;
      default:
        elem = 8;
        break;
    }
    *data = static_cast<const uint8_t*>(ptr);
    *len = length * elem;
    return true;
  }
  if (napi_is_dataview(env, value, &is) == napi_ok && is) {
    size_t length;
    void* ptr;
    if (napi_get_dataview_info(env, value, &length, &ptr, nullptr, nullptr) != napi_ok) return false;
    *data = static_cast<const uint8_t*>(ptr);
    *len = length;
    return true;
  }
  return false;
}

std::string IfNameLengthProblem(const std::string& name, const char** code) {
  if (name.empty()) {
    *code = "EINVAL";
    return "the name must not be empty";
  }
  if (name.size() >= IFNAMSIZ) {
    *code = "ENAMETOOLONG";
    return "it is " + std::to_string(name.size()) + " bytes long, Linux allows at most " + std::to_string(IFNAMSIZ - 1) +
           " (IFNAMSIZ - 1)";
  }
  return "";
}

void CloseFd(int fd) {
  if (fd >= 0) ::close(fd);
}

long EnvBytes(const char* name, long def, long max) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return def;
  char* end = nullptr;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < 0 || n > max) return def;
  return n;
}

}  // namespace tsg
