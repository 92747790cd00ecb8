// A small persistent pool of threads for the AEAD of whole batches (see crypto_pool.cc).
#pragma once

#include <cstddef>

namespace tsg {

// Runs fn(begin, end, arg) over [0, n) in chunks of `chunk` items, on the calling thread and on up to
// CryptoThreads() - 1 pool threads; returns when every chunk has run. Callers from several threads are
// served one at a time. The pool starts on first use.
void ParallelFor(size_t n, size_t chunk, void (*fn)(size_t begin, size_t end, void* arg), void* arg);

// Threads a ParallelFor uses, the caller included: TSGUARD_CRYPTO_THREADS (1-64) if set, else the CPUs
// this process may run on (capped at 64). 1 means everything runs inline.
size_t CryptoThreads();

}  // namespace tsg
