#include "offload.h"

#include <cstring>

namespace tsg {
namespace offload {

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;

inline uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Sets the IPv4 header checksum of the `ihl`-byte header at p.
void FixIpv4Checksum(uint8_t* p, size_t ihl) {
  Put16(p + 10, 0);
  Put16(p + 10, static_cast<uint16_t>(~Fold(SumBytes(p, ihl))));
}

// An L4 checksum over [l4, l4 + l4_len) of the packet at ip, complemented; UDP's 0 becomes 0xffff.
uint16_t L4Checksum(const uint8_t* ip, const uint8_t* l4, uint32_t l4_len, uint8_t proto) {
  uint16_t c = static_cast<uint16_t>(~Fold(SumBytes(l4, l4_len, PseudoHeaderSum(ip, proto, l4_len))));
  return proto == kUdp && c == 0 ? 0xffff : c;
}

// A packet that may join a coalesced write: its layout, checked.
struct Candidate {
  bool ok = false;
  uint8_t version = 0;
  uint8_t proto = 0;
  uint32_t ip_len = 0;
  uint32_t l4_hdr = 0;  // TCP header with options, or 8
  uint32_t payload = 0;
  uint8_t tcp_flags = 0;
};

// Version, IP header length, protocol and ports of any TCP/UDP packet, for closing a flow's run
// when one of its packets cannot join it. False when there are no ports to read.
bool FlowOf(const uint8_t* p, size_t len, uint8_t* version, uint32_t* ip_len, uint8_t* proto) {
  if (len < 1) return false;
  *version = p[0] >> 4;
  if (*version == 4) {
    if (len < 20) return false;
    *ip_len = (p[0] & 0x0f) * 4u;
    *proto = p[9];
  } else if (*version == 6) {
    if (len < 40) return false;
    *ip_len = 40;
    *proto = p[6];
  } else {
    return false;
  }
  return (*proto == kTcp || *proto == kUdp) && len >= *ip_len + 4;
}

Candidate Check(const uint8_t* p, size_t len, bool udp) {
  Candidate c;
  if (len < 1 || len > 65535) return c;
  c.version = p[0] >> 4;
  if (c.version == 4) {
    if (len < 20 || p[0] != 0x45 || Be16(p + 2) != len) return c;  // options, or a length that lies
    if ((Be16(p + 6) & 0x3fff) != 0) return c;                      // MF or a fragment offset
    if (Fold(SumBytes(p, 20)) != 0xffff) return c;
    c.ip_len = 20;
    c.proto = p[9];
  } else if (c.version == 6) {
    if (len < 40 || Be16(p + 4) + 40u != len) return c;
    c.ip_len = 40;
    c.proto = p[6];  // an extension header is any other value: not coalesced
  } else {
    return c;
  }
  const uint8_t* l4 = p + c.ip_len;
  const uint32_t l4_len = static_cast<uint32_t>(len) - c.ip_len;
  if (c.proto == kTcp) {
    if (l4_len < 20) return c;
    c.l4_hdr = (l4[12] >> 4) * 4u;
    if (c.l4_hdr < 20 || c.l4_hdr >= l4_len) return c;  // no payload: nothing to merge
    c.tcp_flags = l4[13];
    if (c.tcp_flags != kAck && c.tcp_flags != (kAck | kPsh)) return c;
  } else if (c.proto == kUdp && udp) {
    if (l4_len <= 8 || Be16(l4 + 4) != l4_len || Be16(l4 + 6) == 0) return c;  // 0: no checksum to trust
    c.l4_hdr = 8;
  } else {
    return c;
  }
  if (Fold(SumBytes(l4, l4_len, PseudoHeaderSum(p, c.proto, l4_len))) != 0xffff) return c;
  c.payload = l4_len - c.l4_hdr;
  c.ok = true;
  return c;
}

// Same addresses, protocol and ports.
bool SameFlow(const uint8_t* a, const uint8_t* b, uint8_t version, uint32_t a_ip, uint32_t b_ip) {
  if (version == 4) {
    if (std::memcmp(a + 12, b + 12, 8) != 0 || a[9] != b[9]) return false;
  } else {
    if (std::memcmp(a + 8, b + 8, 32) != 0 || a[6] != b[6]) return false;
  }
  return std::memcmp(a + a_ip, b + b_ip, 4) == 0;
}

}  // namespace

VnetHdr DecodeVnetHdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  std::memcpy(&h.hdr_len, p + 2, 2);
  std::memcpy(&h.gso_size, p + 4, 2);
  std::memcpy(&h.csum_start, p + 6, 2);
  std::memcpy(&h.csum_offset, p + 8, 2);
  return h;
}

void EncodeVnetHdr(const VnetHdr& h, uint8_t* p) {
  p[0] = h.flags;
  p[1] = h.gso_type;
  std::memcpy(p + 2, &h.hdr_len, 2);
  std::memcpy(p + 4, &h.gso_size, 2);
  std::memcpy(p + 6, &h.csum_start, 2);
  std::memcpy(p + 8, &h.csum_offset, 2);
}

uint64_t SumBytes(const uint8_t* p, size_t len, uint64_t initial) {
  // Sum native 64-bit words (two 128-bit accumulators: add-with-carry, two chains), then 32-bit
  // ones, fold to a native 16-bit one's-complement sum, then swap it into big-endian word order
  // (the one's-complement sum is byte-order independent up to that swap).
  unsigned __int128 acc0 = 0, acc1 = 0;
  while (len >= 16) {
    uint64_t w0, w1;
    std::memcpy(&w0, p, 8);
    std::memcpy(&w1, p + 8, 8);
    acc0 += w0;
    acc1 += w1;
    p += 16;
    len -= 16;
  }
  acc0 += acc1;
  const uint64_t lo = static_cast<uint64_t>(acc0);
  uint64_t s = lo + static_cast<uint64_t>(acc0 >> 64);
  if (s < lo) s++;  // end-around carry
  s = (s & 0xffffffffu) + (s >> 32);
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    s += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    s += w;
    p += 2;
    len -= 2;
  }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (len == 1) s += p[0];
  uint16_t f = Fold(s);
  return initial + static_cast<uint16_t>(f >> 8 | f << 8);
#else
  if (len == 1) s += static_cast<uint32_t>(p[0]) << 8;
  return initial + Fold(s);
#endif
}

uint16_t Fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

uint64_t PseudoHeaderSum(const uint8_t* ip, uint8_t proto, uint32_t l4_len) {
  uint64_t s = proto + (l4_len >> 16) + (l4_len & 0xffff);
  if ((ip[0] >> 4) == 4) return SumBytes(ip + 12, 8, s);
  return SumBytes(ip + 8, 32, s);
}

SplitResult GsoSplit(const VnetHdr& h, const uint8_t* pkt, size_t len, std::vector<uint8_t>* out,
                     std::vector<uint32_t>* lens) {
  const uint8_t type = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
  if (type == kGsoNone) {
    const size_t at = out->size();
    out->insert(out->end(), pkt, pkt + len);
    if (h.flags & kNeedsCsum) {
      const size_t cs = h.csum_start, field = cs + h.csum_offset;
      if (field + 2 > len) {
        out->resize(at);
        return SplitResult::kMalformed;
      }
      uint8_t* p = out->data() + at;
      // The field holds the pseudo-header sum: the sum from csum_start to the end completes it.
      uint16_t c = static_cast<uint16_t>(~Fold(SumBytes(p + cs, len - cs)));
      if (h.csum_offset == 6 && c == 0) c = 0xffff;  // UDP sends a computed 0 as 0xffff
      Put16(p + field, c);
    }
    lens->push_back(static_cast<uint32_t>(len));
    return SplitResult::kSplit;
  }
  if (type != kGsoTcpV4 && type != kGsoTcpV6 && type != kGsoUdpL4) return SplitResult::kMalformed;
  if (len < 20) return SplitResult::kMalformed;
  const uint8_t version = pkt[0] >> 4;
  const uint8_t proto = type == kGsoUdpL4 ? kUdp : kTcp;
  const size_t cs = h.csum_start;
  if (version == 4) {
    if (type == kGsoTcpV6 || cs != (pkt[0] & 0x0fu) * 4 || cs < 20) return SplitResult::kMalformed;
  } else if (version == 6) {
    if (type == kGsoTcpV4 || cs < 40) return SplitResult::kMalformed;
  } else {
    return SplitResult::kMalformed;
  }
  size_t hdr;
  if (proto == kTcp) {
    if (cs + 20 > len) return SplitResult::kMalformed;
    const size_t doff = (pkt[cs + 12] >> 4) * 4u;
    if (doff < 20) return SplitResult::kMalformed;
    hdr = cs + doff;
  } else {
    hdr = cs + 8;
  }
  if (hdr > len) return SplitResult::kMalformed;
  const size_t payload = len - hdr;
  const size_t gso = h.gso_size != 0 && h.gso_size < payload ? h.gso_size : (payload > 0 ? payload : 1);
  const size_t nseg = payload == 0 ? 1 : (payload + gso - 1) / gso;
  const uint16_t id0 = version == 4 ? Be16(pkt + 4) : 0;
  const uint32_t seq0 = proto == kTcp ? Be32(pkt + cs + 4) : 0;
  size_t at = out->size();
  out->resize(at + nseg * hdr + payload);
  for (size_t i = 0; i < nseg; i++) {
    const size_t off = i * gso;
    const size_t plen = payload == 0 ? 0 : (off + gso <= payload ? gso : payload - off);
    const size_t seg = hdr + plen;
    uint8_t* p = out->data() + at;
    std::memcpy(p, pkt, hdr);
    std::memcpy(p + hdr, pkt + hdr + off, plen);
    if (version == 4) {
      Put16(p + 2, static_cast<uint16_t>(seg));
      Put16(p + 4, static_cast<uint16_t>(id0 + i));
      FixIpv4Checksum(p, cs);
    } else {
      Put16(p + 4, static_cast<uint16_t>(seg - 40));
    }
    uint8_t* l4 = p + cs;
    const uint32_t l4_len = static_cast<uint32_t>(seg - cs);
    if (proto == kTcp) {
      Put32(l4 + 4, seq0 + static_cast<uint32_t>(off));
      if (i + 1 < nseg) l4[13] &= static_cast<uint8_t>(~(kFin | kPsh));
      if (i > 0) l4[13] &= static_cast<uint8_t>(~kCwr);
      Put16(l4 + 16, 0);
      Put16(l4 + 16, L4Checksum(p, l4, l4_len, kTcp));
    } else {
      Put16(l4 + 4, static_cast<uint16_t>(l4_len));
      Put16(l4 + 6, 0);
      Put16(l4 + 6, L4Checksum(p, l4, l4_len, kUdp));
    }
    lens->push_back(static_cast<uint32_t>(seg));
    at += seg;
  }
  return SplitResult::kSplit;
}

size_t PayloadOffset(const uint8_t* data, uint8_t proto) {
  const size_t ip = (data[0] >> 4) == 4 ? 20 : 40;
  return ip + (proto == kTcp ? (data[ip + 12] >> 4) * 4u : 8);
}

void Coalesce(const uint8_t* const* data, const size_t* len, uint32_t n, bool udp, std::vector<WriteUnit>* units,
              std::vector<uint32_t>* next) {
  units->clear();
  next->assign(n, UINT32_MAX);
  std::vector<uint32_t> open;  // units that may still take packets, at most one per flow
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t* p = data[i];
    const Candidate c = Check(p, len[i], udp);
    // The open run of this packet's flow, if any.
    uint8_t version, proto;
    uint32_t ip_len;
    size_t slot = open.size();
    if (FlowOf(p, len[i], &version, &ip_len, &proto)) {
      for (size_t k = 0; k < open.size(); k++) {
        const WriteUnit& u = (*units)[open[k]];
        const uint8_t* f = data[u.first];
        if ((f[0] >> 4) == version && u.proto == proto && SameFlow(f, p, version, (version == 4 ? 20 : 40), ip_len)) {
          slot = k;
          break;
        }
      }
    }
    if (slot < open.size()) {
      WriteUnit& u = (*units)[open[slot]];
      const uint8_t* f = data[u.first];
      bool join = c.ok && c.payload <= u.gso_size && u.total + c.payload <= 65535 && u.count < kMaxCoalesce;
      if (join && version == 4) {
        join = f[1] == p[1] && f[8] == p[8] && (f[6] & 0x40) == (p[6] & 0x40) &&
               Be16(p + 4) == static_cast<uint16_t>(u.last_id + 1);
      } else if (join) {
        join = std::memcmp(f, p, 4) == 0 && f[7] == p[7] && u.total - 40 + c.payload <= 65535;
      }
      if (join && proto == kTcp) {
        const uint8_t* ft = f + c.ip_len;
        const uint8_t* pt = p + c.ip_len;
        join = Be32(pt + 4) == u.next_seq && std::memcmp(ft + 8, pt + 8, 4) == 0 && ((ft[12] >> 4) * 4u) == c.l4_hdr &&
               std::memcmp(ft + 20, pt + 20, c.l4_hdr - 20) == 0;
      }
      if (join) {
        (*next)[u.last] = i;
        u.last = i;
        u.count++;
        u.total += c.payload;
        u.next_seq += c.payload;
        if (version == 4) u.last_id = Be16(p + 4);
        if (c.payload < u.gso_size || (c.tcp_flags & kPsh)) {
          u.closed = true;
          open.erase(open.begin() + static_cast<std::ptrdiff_t>(slot));
        }
        continue;
      }
      // The flow's run ends here; this packet writes alone or starts the next run.
      u.closed = true;
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(slot));
    }
    WriteUnit u;
    u.first = u.last = i;
    u.total = static_cast<uint32_t>(len[i]);
    if (c.ok && !(c.tcp_flags & kPsh)) {
      u.proto = c.proto;
      u.gso_size = static_cast<uint16_t>(c.payload);
      u.head_len = static_cast<uint16_t>(c.ip_len + c.l4_hdr);
      if (c.version == 4) u.last_id = Be16(p + 4);
      if (c.proto == kTcp) u.next_seq = Be32(p + c.ip_len + 4) + c.payload;
      open.push_back(static_cast<uint32_t>(units->size()));
    } else {
      u.closed = true;
    }
    units->push_back(u);
  }
  // Finish the merged ones: headers patched for the whole run and their virtio_net_hdr.
  for (WriteUnit& u : *units) {
    if (u.count < 2) {
      u.hdr = VnetHdr();
      continue;
    }
    const uint8_t* f = data[u.first];
    const uint8_t* l = data[u.last];
    uint8_t* h = u.head;
    std::memcpy(h, f, u.head_len);
    const bool v4 = (f[0] >> 4) == 4;
    const uint32_t ip_len = v4 ? 20 : 40;
    if (v4) {
      Put16(h + 2, static_cast<uint16_t>(u.total));
      FixIpv4Checksum(h, 20);
    } else {
      Put16(h + 4, static_cast<uint16_t>(u.total - 40));
    }
    const uint32_t l4_len = u.total - ip_len;
    uint8_t* l4 = h + ip_len;
    if (u.proto == kTcp) {
      l4[13] = l[ip_len + 13];  // ACK, or ACK|PSH from the last member
      Put16(l4 + 16, Fold(PseudoHeaderSum(h, kTcp, l4_len)));
    } else {
      Put16(l4 + 4, static_cast<uint16_t>(l4_len));
      Put16(l4 + 6, Fold(PseudoHeaderSum(h, kUdp, l4_len)));
    }
    u.hdr.flags = kNeedsCsum;
    u.hdr.gso_type = u.proto == kUdp ? kGsoUdpL4 : (v4 ? kGsoTcpV4 : kGsoTcpV6);
    u.hdr.hdr_len = u.head_len;
    u.hdr.gso_size = u.gso_size;
    u.hdr.csum_start = static_cast<uint16_t>(ip_len);
    u.hdr.csum_offset = u.proto == kUdp ? 6 : 16;
  }
}

}  // namespace offload
}  // namespace tsg
