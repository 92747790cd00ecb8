// The crypto thread pool: threads are created once (pthread, so a failure to create one only means
// fewer threads) and sleep on a condition variable between batches. A batch is cut into chunks taken
// from an atomic counter by the caller and every awake worker, so a worker that the scheduler wakes
// late costs nothing: the caller takes the chunks it has not started. The caller returns only once
// no worker is inside the batch, so the batch's state can live on the caller's stack.
#include "crypto_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tsg {
namespace {

constexpr size_t kMaxThreads = 64;

struct Task {
  size_t n, chunk, chunks;
  void (*fn)(size_t, size_t, void*);
  void* arg;
  std::atomic<size_t> next{0};
  std::atomic<size_t> finished{0};
  size_t inside = 0;  // workers working on this task (guarded by Pool::mu)
};

// Takes chunks until none is left; returns how many this thread ran.
void RunChunks(Task* t) {
  for (;;) {
    const size_t c = t->next.fetch_add(1, std::memory_order_relaxed);
    if (c >= t->chunks) return;
    const size_t begin = c * t->chunk;
    const size_t end = begin + t->chunk < t->n ? begin + t->chunk : t->n;
    t->fn(begin, end, t->arg);
    t->finished.fetch_add(1, std::memory_order_acq_rel);
  }
}

struct Pool {
  std::mutex call;  // one batch at a time
  std::mutex mu;
  std::condition_variable work;
  std::condition_variable done;
  unsigned long long gen = 0;
  Task* task = nullptr;
  size_t threads = 1;  // caller included

  static void* Worker(void* self) {
    auto* p = static_cast<Pool*>(self);
    unsigned long long seen = 0;
    for (;;) {
      Task* t;
      {
        std::unique_lock<std::mutex> lock(p->mu);
        p->work.wait(lock, [&] { return p->gen != seen; });
        seen = p->gen;
        t = p->task;
        if (t == nullptr) continue;
        t->inside++;
      }
      RunChunks(t);
      std::lock_guard<std::mutex> lock(p->mu);
      if (--t->inside == 0) p->done.notify_all();
    }
    return nullptr;
  }
};

size_t ConfiguredThreads() {
  const char* env = std::getenv("TSGUARD_CRYPTO_THREADS");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1) return v > static_cast<long>(kMaxThreads) ? kMaxThreads : static_cast<size_t>(v);
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int cpus = CPU_COUNT(&set);
  return cpus < 1 ? 1 : cpus > static_cast<int>(kMaxThreads) ? kMaxThreads : static_cast<size_t>(cpus);
}

// Never destroyed: its threads sleep until the process exits.
Pool* Instance() {
  static Pool* pool = [] {
    auto* p = new Pool();
    const size_t want = ConfiguredThreads();
    for (size_t i = 1; i < want; i++) {
      pthread_t th;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 256 * 1024);
      const bool ok = pthread_create(&th, &attr, &Pool::Worker, p) == 0;
      pthread_attr_destroy(&attr);
      if (!ok) break;
      pthread_detach(th);
      p->threads++;
    }
    return p;
  }();
  return pool;
}

}  // namespace

size_t CryptoThreads() { return Instance()->threads; }

void ParallelFor(size_t n, size_t chunk, void (*fn)(size_t, size_t, void*), void* arg) {
  if (n == 0) return;
  if (chunk == 0) chunk = 1;
  Pool* p = Instance();
  Task t;
  t.n = n;
  t.chunk = chunk;
  t.chunks = (n + chunk - 1) / chunk;
  t.fn = fn;
  t.arg = arg;
  if (p->threads == 1 || t.chunks == 1) {
    RunChunks(&t);
    return;
  }
  std::lock_guard<std::mutex> serial(p->call);
  {
    std::lock_guard<std::mutex> lock(p->mu);
    p->task = &t;
    p->gen++;
  }
  p->work.notify_all();
  RunChunks(&t);
  std::unique_lock<std::mutex> lock(p->mu);
  p->done.wait(lock, [&] { return t.inside == 0 && t.finished.load(std::memory_order_acquire) == t.chunks; });
  p->task = nullptr;
}

}  // namespace tsg
