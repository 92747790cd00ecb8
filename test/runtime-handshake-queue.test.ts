/**
 * The device's handshake queue as the runtime schedules it, and its "under
 * load" rule (wireguard-go's): a responder that keeps up answers every
 * initiation; a burst that leaves ≥ 128 handshake messages waiting makes it
 * demand cookies, and an initiator that echoes the cookie (mac2) is then
 * answered. Real UDP sockets on 127.0.0.1 only; no TUN, no root needed.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { getCrypto } from '../src/crypto/index.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { Runtime } from '../src/io/runtime.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { MSG_COOKIE_REPLY, MSG_RESPONSE } from '../src/noise/constants.js';
import { createInitiation, Handshake, makeIdentity } from '../src/noise/handshake.js';
import { UdpSocket } from '../src/io/udp.js';

const c = getCrypto();

interface Initiator {
  hs: Handshake;
  gen: CookieGenerator;
  identity: ReturnType<typeof makeIdentity>;
}

let rt: Runtime | null = null;
let sock: UdpSocket | null = null;
afterEach(() => {
  rt?.close();
  sock?.close();
  rt = sock = null;
});

function setup(identities: number) {
  rt = Runtime.start({ ifname: null, listenPort: 0, log: () => undefined });
  const rpriv = c.generatePrivateKey();
  const rpub = c.publicKey(rpriv);
  const initiators: Initiator[] = [];
  rt.batch(() => {
    rt!.device.setPrivateKey(rpriv);
    for (let i = 0; i < identities; i++) {
      const identity = makeIdentity(c, c.generatePrivateKey());
      rt!.device.setPeer(identity.publicKey, {});
      const hs = new Handshake(c, rpub);
      hs.precompute(c, identity);
      initiators.push({ hs, identity, gen: new CookieGenerator(c, () => performance.now(), rpub) });
    }
  });
  sock = UdpSocket.bind({ port: 0, family: '4' });
  const replies: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  sock.start(
    (datas) => {
      for (const d of datas) replies.push(new Uint8Array(d));
      wake?.();
    },
    () => undefined,
  );
  let ts = Date.now() * 1000;
  const initiation = (who: Initiator, index: number): Uint8Array => {
    const m = createInitiation(c, who.identity, who.hs, index, tai64n((ts += 1000) / 1000));
    if (m === null) throw new Error('createInitiation failed');
    who.gen.addMacs(m);
    return m;
  };
  const to = UdpSocket.endpoint('127.0.0.1', rt!.listenPort);
  const send = (msgs: Uint8Array[]) => sock!.sendBatch(msgs, msgs.map(() => to));
  /** Wait until `n` replies arrived and the responder's queue is empty. */
  const settle = async (n: number) => {
    while (replies.length < n || rt!.device.pendingHandshakes > 0) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
  };
  return { initiators, replies, initiation, send, settle };
}

const count = (rs: Uint8Array[], type: number) => rs.filter((r) => r[0] === type).length;

describe('runtime handshake queue', () => {
  it('answers every initiation of a burst it keeps up with, without cookies', async () => {
    const t = setup(32);
    t.send(t.initiators.map((who, i) => t.initiation(who, i + 1)));
    await t.settle(32);
    expect(count(t.replies, MSG_RESPONSE)).toBe(32);
    expect(count(t.replies, MSG_COOKIE_REPLY)).toBe(0);
    expect(rt!.device.underLoad).toBe(false);
    expect(rt!.device.stats.handshakeQueueFull).toBe(0);
  });

  it('demands cookies once ≥ 128 handshakes wait, and answers an initiator that echoes its cookie', async () => {
    const t = setup(200);
    // One sendmmsg: the responder cannot read before all of them are in its socket buffer.
    const sent = t.send(t.initiators.map((who, i) => t.initiation(who, i + 1)));
    expect(sent).toBe(200);
    // Datagrams beyond the receive buffer may be dropped by the kernel (unprivileged buffer sizes);
    // wait until the replies stop growing.
    let last = -1;
    while (t.replies.length !== last || rt!.device.pendingHandshakes > 0) {
      last = t.replies.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(t.replies.length).toBeGreaterThanOrEqual(128);
    const cookies = t.replies.filter((r) => r[0] === MSG_COOKIE_REPLY);
    expect(cookies.length).toBeGreaterThan(0);
    expect(rt!.device.underLoad).toBe(true);

    // The first initiator whose initiation got a cookie reply re-sends with mac2 (a fresh initiation, same sender index).
    const reply = cookies[0]!;
    const index = new DataView(reply.buffer, reply.byteOffset).getUint32(4, true);
    const who = t.initiators[index - 1]!;
    expect(who.gen.consumeReply(reply)).toBe(true);
    const before = count(t.replies, MSG_RESPONSE);
    t.send([t.initiation(who, index)]);
    await t.settle(t.replies.length + 1);
    const last1 = t.replies.at(-1)!;
    expect(last1[0]).toBe(MSG_RESPONSE);
    expect(count(t.replies, MSG_RESPONSE)).toBe(before + 1);
  });
});
