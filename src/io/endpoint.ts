/**
 * UDP endpoints in binary for the shell. The addon reports each received
 * datagram's source as a fixed-size endpoint record (native/endpoint.h:
 * remote address, port, scope id, the local address it arrived on and its
 * interface) and takes the same records for sends, so no address becomes
 * text or is parsed per packet. {@link EndpointInterner} turns records into
 * {@link Endpoint} objects, one per distinct source; every endpoint carries
 * its record (made once) for sending, and its `host` text only when someone
 * reads it (UAPI, logs).
 * @module
 */

import type { Endpoint } from '../device/types.js';
import { loadNative } from './native.js';

/** Bytes of one endpoint record. */
export const ENDPOINT_RECORD_LEN = 48;
/** 32-bit words of one endpoint record. */
export const ENDPOINT_RECORD_WORDS = ENDPOINT_RECORD_LEN / 4;
/** Words compared to tell records apart: all but the trailing errno word. */
const IDENTITY_WORDS = 11;

/** The record of an endpoint made here; a symbol so that it stays out of the core's view. */
const RECORD = Symbol('tsguard.endpointRecord');

/** The host-order words of the bytes `00 00 ff ff` (an IPv4-mapped prefix) and of a 16-bit port field. */
const MAPPED_WORD = new Uint32Array(new Uint8Array([0, 0, 0xff, 0xff]).buffer)[0]!;
const PORT_MASK = new Uint32Array(new Uint8Array([0xff, 0xff, 0, 0]).buffer)[0]!;

/** An endpoint reported by the socket (or encoded once from a configured one). */
class WireEndpoint implements Endpoint {
  readonly port: number;
  readonly [RECORD]: Uint32Array;
  #host: string | undefined;
  #ip: Uint8Array | undefined;

  constructor(record: Uint32Array) {
    this[RECORD] = record;
    const b = new Uint8Array(record.buffer, record.byteOffset, ENDPOINT_RECORD_LEN);
    this.port = (b[16]! << 8) | b[17]!;
  }

  get host(): string {
    return (this.#host ??= loadNative().endpointHost(this.#bytes()));
  }

  get ip(): Uint8Array {
    if (this.#ip === undefined) {
      const b = this.#bytes();
      this.#ip = isMapped(this[RECORD], 0) ? b.slice(12, 16) : b.slice(0, 16);
    }
    return this.#ip;
  }

  #bytes(): Uint8Array {
    const r = this[RECORD];
    return new Uint8Array(r.buffer, r.byteOffset, ENDPOINT_RECORD_LEN);
  }
}

const isMapped = (w: Uint32Array, o: number): boolean => w[o] === 0 && w[o + 1] === 0 && w[o + 2] === MAPPED_WORD;

function sameRecord(a: Uint32Array, b: Uint32Array, o: number): boolean {
  for (let k = 0; k < IDENTITY_WORDS; k++) if (a[k] !== b[o + k]) return false;
  return true;
}

/** A Map key for the remote part (address, port, scope) of the record at word `o`: a number for IPv4, a bigint for IPv6. */
function remoteKey(w: Uint32Array, o: number): number | bigint {
  const port = w[o + 4]! & PORT_MASK;
  if (isMapped(w, o)) return w[o + 3]! * 0x10000 + port;
  let k = 0n;
  for (let i = 0; i < 4; i++) k = (k << 32n) | BigInt(w[o + i]!);
  return (((k << 32n) | BigInt(port)) << 32n) | BigInt(w[o + 5]!);
}

/**
 * Turns the endpoint records of received datagrams into {@link Endpoint}
 * objects: equal records give the same object (the previous datagram's is
 * checked first, then a bounded map keyed by the remote address), so the
 * device sees an unchanged object while a peer's endpoint and the local
 * address its packets arrive on stay the same.
 */
export class EndpointInterner {
  readonly #map = new Map<number | bigint, WireEndpoint>();
  readonly #limit: number;
  #last: WireEndpoint | null = null;

  /** `limit`: distinct remote endpoints remembered (the oldest is forgotten first). */
  constructor(limit = 8192) {
    this.#limit = limit;
  }

  /** The endpoint of record `i` of `records` (32-bit words, {@link ENDPOINT_RECORD_WORDS} per record). */
  intern(records: Uint32Array, i: number): Endpoint {
    const o = i * ENDPOINT_RECORD_WORDS;
    const last = this.#last;
    if (last !== null && sameRecord(last[RECORD], records, o)) return last;
    const key = remoteKey(records, o);
    let ep = this.#map.get(key);
    if (ep === undefined || !sameRecord(ep[RECORD], records, o)) {
      ep = new WireEndpoint(records.slice(o, o + ENDPOINT_RECORD_WORDS));
      if (this.#map.size >= this.#limit && !this.#map.has(key)) this.#map.delete(this.#map.keys().next().value!);
      this.#map.set(key, ep);
    }
    this.#last = ep;
    return ep;
  }

  /** Distinct remote endpoints remembered. */
  get size(): number {
    return this.#map.size;
  }
}

/** Records of endpoints made elsewhere (configuration, tests), encoded on first use. */
const foreign = new WeakMap<Endpoint, Uint32Array>();

/**
 * The record of `ep` for sending: its own when the socket reported it,
 * else encoded from `host` and `port` once (kept while `ep` lives). Throws a
 * TypeError with code `ERR_INVALID_ADDRESS` when `host` is not an IP address
 * or the port is not in 0..65535.
 */
export function endpointRecord(ep: Endpoint): Uint32Array {
  const own = (ep as Partial<WireEndpoint>)[RECORD];
  if (own !== undefined) return own;
  let r = foreign.get(ep);
  if (r === undefined) {
    const b = loadNative().encodeEndpoint(ep.host, ep.port);
    r = new Uint32Array(b.buffer, b.byteOffset, ENDPOINT_RECORD_WORDS);
    // A record with an errno (its scope interface is missing) is made again next time.
    if (r[ENDPOINT_RECORD_WORDS - 1] === 0) foreign.set(ep, r);
  }
  return r;
}

/** An {@link Endpoint} for `host` (IPv4, or IPv6 with an optional `%scope`) and `port`, with its record. */
export function makeEndpoint(host: string, port: number): Endpoint {
  const b = loadNative().encodeEndpoint(host, port);
  return new WireEndpoint(new Uint32Array(b.buffer, b.byteOffset, ENDPOINT_RECORD_WORDS));
}
