/**
 * StoreTable / viewTable (src/util/store-table.ts): a batch of views crosses to the addon as the few
 * backing buffers and (store, offset, length) rows; the rows give back exactly the views. The addon
 * refuses a row outside its store before doing anything.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/io/native.js';
import { StoreTable, viewTable } from '../src/util/store-table.js';

describe('StoreTable and viewTable', () => {
  it('describe every view by a store and a range that give back the same bytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 200 }),
        (sizes, picks) => {
          const buffers = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + k) & 255));
          const views = picks.map(([b, off, len]) => {
            const buf = buffers[b % buffers.length]!;
            const o = off % buf.length;
            return buf.subarray(o, o + (len % (buf.length - o + 1)));
          });
          const stores = new StoreTable();
          const t = viewTable(stores, views, views.length, new Uint32Array(3));
          expect(stores.stores.length).toBe(new Set(views.map((v) => v.buffer)).size);
          views.forEach((v, i) => {
            const s = stores.stores[t[3 * i]!]!;
            expect(s.buffer).toBe(v.buffer);
            expect(s.subarray(t[3 * i + 1]!, t[3 * i + 1]! + t[3 * i + 2]!)).toEqual(v);
          });
          stores.clear();
          expect(stores.stores).toHaveLength(0);
        },
      ),
    );
  });

  it('the addon refuses a view outside its store (and a wrong table) before sending anything', () => {
    const sock = new (loadNative().UdpSocket)();
    try {
      const store = new Uint8Array(100);
      const records = new Uint8Array(2 * 48);
      expect(() => sock.sendBatch([store], Uint32Array.from([0, 0, 10, 0, 95, 10]), records, 2)).toThrow(/view 1 is outside its store/);
      expect(() => sock.sendBatch([store], Uint32Array.from([1, 0, 10]), records, 1)).toThrow(/view 0 is outside its store/);
      expect(() => sock.sendBatch([store], Uint32Array.from([0, 0, 10]), records, 2)).toThrow(RangeError);
      expect(() => sock.sendBatch([store], new Uint8Array(3) as unknown as Uint32Array, records, 1)).toThrow(TypeError);
    } finally {
      sock.close();
    }
  });
});
