// Flow-fair queue of TUN reads: the scheduler of fq_codel (RFC 8290, without the CoDel part) in front
// of the tunnel. The TUN is read ahead into this queue, one FIFO per flow (hash of addresses, protocol
// and ports), and batches are taken from it in deficit round robin with the sparse-flow boost: a flow
// that was idle (a ping, a DNS query, an SSH keystroke) goes before the bulk flows, which otherwise
// hold it behind their standing queue in the kernel's TUN ring. Order within a flow is kept. Plain C++
// (no N-API): native/tun.cc owns one; the addon's test binding drives one directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tsg {

class FlowQueue {
 public:
  // One read: a header then up to `cap` bytes of data. Allocated by Alloc, given back by Free.
  struct Item {
    Item* next;
    uint32_t len;  // bytes of data read
    uint32_t cap;  // bytes of data allocated
    uint64_t tag;  // caller's value (the test binding's sequence number)
    uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
  };

  // Reads of at most `item_cap` bytes; Full() once the items queued take `byte_limit` bytes.
  FlowQueue(size_t byte_limit, uint32_t item_cap, uint32_t seed);
  ~FlowQueue();
  FlowQueue(const FlowQueue&) = delete;
  FlowQueue& operator=(const FlowQueue&) = delete;

  // An item with room for item_cap bytes (a spare one when there is one), or nullptr when out of memory.
  Item* Alloc();
  // Queues `it` holding `len` bytes; the flow is that of the IP packet at data() + `skip` (the
  // virtio_net_hdr before it). A short read is moved to a small item (`it` is then reused).
  void Push(Item* it, uint32_t len, size_t skip);
  // The next item in deficit round robin order (sparse flows first), or nullptr when empty. With
  // `new_only`, nullptr instead of an item of a flow that has used its first quantum (a bulk flow).
  Item* Pop(bool new_only = false);
  // Whether flows that were idle have items waiting (a sparse flow's packet: a batch of its own).
  bool HasNew() const { return !new_.empty(); }
  void Free(Item* it);

  bool Empty() const { return items_ == 0; }
  bool Full() const { return bytes_ >= limit_; }
  size_t bytes() const { return bytes_; }
  size_t peak_bytes() const { return peak_; }
  size_t items() const { return items_; }

  // The bucket of the IPv4/IPv6 packet `p` (len bytes): addresses, protocol and, for TCP, UDP and
  // UDP-Lite packets that are not fragments, ports. Anything else goes by what it has.
  uint32_t Bucket(const uint8_t* p, size_t len) const;

  static constexpr uint32_t kBuckets = 1024;
  // Bytes a flow may send per round (fq_codel's default: one Ethernet frame).
  static constexpr int32_t kQuantum = 1514;

 private:
  struct Flow {
    Item* head = nullptr;
    Item* tail = nullptr;
    Flow* next = nullptr;  // in new_ or old_
    int32_t deficit = 0;
    uint8_t list = 0;      // kNone, kNew, kOld
  };
  struct List {
    Flow* head = nullptr;
    Flow* tail = nullptr;
    bool empty() const { return head == nullptr; }
    void PushBack(Flow* f);
    Flow* PopFront();
  };
  enum : uint8_t { kNone = 0, kNew = 1, kOld = 2 };

  std::vector<Flow> flows_;
  List new_, old_;
  // A spare item of `cap` bytes from `spare`, or a new one (nullptr when out of memory).
  static Item* Take(std::vector<Item*>* spare, uint32_t cap);

  std::vector<Item*> spare_, small_spare_;
  size_t limit_;
  uint32_t item_cap_;
  uint32_t seed_;
  size_t bytes_ = 0, peak_ = 0, items_ = 0;
};

}  // namespace tsg
