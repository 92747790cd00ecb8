/**
 * TAI64N timestamps as carried in WireGuard handshake initiations: 12 bytes,
 * big-endian, 8 bytes of TAI seconds (`2^62 + 10 + unix seconds`, the
 * constant 10 being the TAI−UTC offset of 1972 that WireGuard, like
 * libtai's conventional labelling, uses without leap-second tables) followed
 * by 4 bytes of nanoseconds.
 *
 * The responder only uses the timestamp to reject replays (it must be
 * strictly greater than the last one accepted from that peer), so its
 * precision is not needed; a precise value would leak the initiator's clock
 * and timing. {@link tai64nNow} therefore rounds the nanoseconds down to a
 * multiple of 2^24 ns (≈16.8 ms), exactly as wireguard-go (`whitenerMask`)
 * and the Linux driver (`rounddown_pow_of_two(NSEC_PER_SEC /
 * INITIATIONS_PER_SECOND)`) do. A consequence, shared with them: two
 * initiations within the same ≈16.8 ms window carry equal timestamps and the
 * second is rejected as a replay — which also rate-limits initiations.
 * @module
 */

/** Length of a TAI64N label. */
export const TAI64N_LEN = 12;

/** Granularity, in nanoseconds, of timestamps made by {@link tai64nNow} (2^24 ns ≈ 16.8 ms). */
export const TAI64N_WHITEN_NS = 0x1000000;

const TWO32 = 0x1_0000_0000;
const TAI_BASE_HI = 0x4000_0000; // high 32 bits of 2^62
const TAI_OFFSET = 10;

/**
 * Encode a TAI64N label for `unixMillis` milliseconds since the Unix epoch,
 * plus `nanosExtra` (0 ≤ nanosExtra < 1 000 000) nanoseconds within the
 * millisecond. Not whitened: use {@link tai64nNow} for handshakes.
 */
export function tai64n(unixMillis: number, nanosExtra = 0): Uint8Array {
  if (!Number.isFinite(unixMillis)) throw new RangeError('tai64n: time must be finite');
  if (!Number.isInteger(nanosExtra) || nanosExtra < 0 || nanosExtra >= 1_000_000) {
    throw new RangeError('tai64n: nanosExtra must be an integer in [0, 1000000)');
  }
  const ms = Math.floor(unixMillis);
  const secs = Math.floor(ms / 1000);
  const nanos = (ms - secs * 1000) * 1_000_000 + nanosExtra;
  const v = secs + TAI_OFFSET; // exact: |v| ≪ 2^53
  const hiPart = Math.floor(v / TWO32);
  const out = new Uint8Array(TAI64N_LEN);
  const view = new DataView(out.buffer);
  view.setUint32(0, (TAI_BASE_HI + hiPart) >>> 0, false);
  view.setUint32(4, v - hiPart * TWO32, false);
  view.setUint32(8, nanos, false);
  return out;
}

/**
 * A whitened TAI64N label for the current time (or for `unixMillis` from a
 * millisecond clock): the nanoseconds are rounded down to a multiple of
 * {@link TAI64N_WHITEN_NS} to avoid leaking precise timing (see the module
 * documentation).
 */
export function tai64nNow(unixMillis: number = Date.now()): Uint8Array {
  const out = tai64n(unixMillis);
  const view = new DataView(out.buffer);
  const nanos = view.getUint32(8, false);
  view.setUint32(8, nanos - (nanos % TAI64N_WHITEN_NS), false);
  return out;
}

/**
 * Compare two TAI64N labels byte-wise (big-endian): negative when `a` is
 * earlier than `b`, 0 when equal, positive when later. Arrays of different
 * lengths compare by their common prefix, then shorter-first.
 */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
