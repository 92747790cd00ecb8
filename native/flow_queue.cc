#include "flow_queue.h"

#include <cstdlib>
#include <cstring>

namespace tsg {

namespace {

// Spare items kept for the next reads: full-size ones (a read-ahead of a few batches reuses them) and
// small ones (the copies of short reads), so that the packet path allocates nothing once warm.
constexpr size_t kMaxSpare = 64;
constexpr size_t kMaxSmallSpare = 512;
// Reads up to this size (pings, ACKs, DNS, MTU-sized packets) are copied into a small item, so that a
// full-size one is not held by a short packet and the queue's byte limit counts close to their size.
constexpr uint32_t kSmallCap = 2048 - sizeof(FlowQueue::Item);

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

uint64_t Final(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

bool HasPorts(uint8_t proto) { return proto == 6 || proto == 17 || proto == 136; }

}  // namespace

void FlowQueue::List::PushBack(Flow* f) {
  f->next = nullptr;
  if (tail == nullptr) {
    head = tail = f;
  } else {
    tail->next = f;
    tail = f;
  }
}

FlowQueue::Flow* FlowQueue::List::PopFront() {
  Flow* f = head;
  head = f->next;
  if (head == nullptr) tail = nullptr;
  f->next = nullptr;
  return f;
}

FlowQueue::FlowQueue(size_t byte_limit, uint32_t item_cap, uint32_t seed)
    : flows_(kBuckets), limit_(byte_limit), item_cap_(item_cap), seed_(seed) {}

FlowQueue::~FlowQueue() {
  for (Flow& f : flows_) {
    while (f.head != nullptr) {
      Item* it = f.head;
      f.head = it->next;
      std::free(it);
    }
  }
  for (Item* it : spare_) std::free(it);
  for (Item* it : small_spare_) std::free(it);
}

FlowQueue::Item* FlowQueue::Take(std::vector<Item*>* spare, uint32_t cap) {
  Item* it;
  if (!spare->empty()) {
    it = spare->back();
    spare->pop_back();
  } else {
    it = static_cast<Item*>(std::malloc(sizeof(Item) + cap));
    if (it == nullptr) return nullptr;
    it->cap = cap;
  }
  it->next = nullptr;
  it->len = 0;
  it->tag = 0;
  return it;
}

FlowQueue::Item* FlowQueue::Alloc() { return Take(&spare_, item_cap_); }

void FlowQueue::Free(Item* it) {
  if (it->cap == item_cap_ && spare_.size() < kMaxSpare) {
    spare_.push_back(it);
  } else if (it->cap == kSmallCap && small_spare_.size() < kMaxSmallSpare) {
    small_spare_.push_back(it);
  } else {
    std::free(it);
  }
}

uint32_t FlowQueue::Bucket(const uint8_t* p, size_t len) const {
  uint64_t h = seed_;
  if (len >= 20 && (p[0] >> 4) == 4) {
    const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    const uint8_t proto = p[9];
    h = Mix(h, Load64(p + 12));  // source and destination address
    h = Mix(h, proto);
    const bool fragment = (((p[6] & 0x3f) << 8) | p[7]) != 0;  // MF or an offset
    if (!fragment && HasPorts(proto) && ihl >= 20 && len >= ihl + 4) h = Mix(h, Load32(p + ihl));
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    const uint8_t nh = p[6];
    for (size_t i = 8; i < 40; i += 8) h = Mix(h, Load64(p + i));  // source and destination address
    h = Mix(h, nh);
    if (HasPorts(nh) && len >= 44) h = Mix(h, Load32(p + 40));
  } else {
    for (size_t i = 0; i < len && i < 8; i++) h = Mix(h, p[i]);
  }
  return static_cast<uint32_t>(Final(h) % kBuckets);
}

void FlowQueue::Push(Item* it, uint32_t len, size_t skip) {
  if (len <= kSmallCap && it->cap > kSmallCap) {
    if (Item* small = Take(&small_spare_, kSmallCap)) {
      std::memcpy(small->data(), it->data(), len);
      small->tag = it->tag;
      Free(it);
      it = small;
    }
  }
  it->len = len;
  it->next = nullptr;
  const size_t at = skip < len ? skip : len;
  Flow& f = flows_[Bucket(it->data() + at, len - at)];
  if (f.tail == nullptr) {
    f.head = f.tail = it;
  } else {
    f.tail->next = it;
    f.tail = it;
  }
  if (f.list == kNone) {
    f.list = kNew;
    f.deficit = kQuantum;
    new_.PushBack(&f);
  }
  items_++;
  bytes_ += sizeof(Item) + it->cap;
  if (bytes_ > peak_) peak_ = bytes_;
}

FlowQueue::Item* FlowQueue::Pop(bool new_only) {
  for (;;) {
    List* l = !new_.empty() ? &new_ : !old_.empty() && !new_only ? &old_ : nullptr;
    if (l == nullptr) return nullptr;
    Flow* f = l->head;
    if (f->deficit <= 0) {
      // Its round is used up: a new quantum, and to the back of the old flows.
      f->deficit += kQuantum;
      l->PopFront();
      f->list = kOld;
      old_.PushBack(f);
      continue;
    }
    if (f->head == nullptr) {
      l->PopFront();
      // A new flow that ran dry goes to the old ones (if any wait) rather than leaving, so that a
      // flow sending just under the quantum at a time cannot stay "new" for ever (RFC 8290, 4.2).
      if (l == &new_ && !old_.empty()) {
        f->list = kOld;
        old_.PushBack(f);
      } else {
        f->list = kNone;
      }
      continue;
    }
    Item* it = f->head;
    f->head = it->next;
    if (f->head == nullptr) f->tail = nullptr;
    it->next = nullptr;
    f->deficit -= static_cast<int32_t>(it->len);
    items_--;
    bytes_ -= sizeof(Item) + it->cap;
    return it;
  }
}

}  // namespace tsg
