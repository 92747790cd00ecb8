/**
 * Prometheus metrics of one device, read at scrape time from the device's
 * counters (prom-client `collect()` callbacks): nothing runs per packet.
 *
 * The `wireguard_*` families have the names and labels of
 * mdlayher/wireguard_exporter, so dashboards built for it work unchanged;
 * the `tsguard_*` families are ours.
 * @module
 */

import promClient from 'prom-client';
import { keyToBase64 } from '../crypto/keys.js';
import { DROP_REASONS, formatEndpoint } from '../device/types.js';
import type { Device } from '../device/device.js';
import { formatPrefix } from '../routing/ip.js';

/** What the device metrics read. */
export interface DeviceMetricsSource {
  /** Interface name (the `device` label). */
  ifname: string;
  /** The engine. */
  device: Device;
  /** Friendly name of a peer (the `name` label of `wireguard_peer_info`). */
  peerName?: (publicKey: string) => string | undefined;
}

/**
 * Register the metrics of `src` in `registry`. Returns a function that
 * detaches the one event listener (handshake counting).
 */
export function registerDeviceMetrics(registry: promClient.Registry, src: DeviceMetricsSource): () => void {
  const { device, ifname } = src;
  const registers = [registry];
  const handshakes = { initiator: 0, responder: 0 };
  const off = device.events.on('handshake', (e) => void handshakes[e.isInitiator ? 'initiator' : 'responder']++);
  const peers = () => [...device.peers()].map((p) => device.peerInfo(p));

  new promClient.Gauge({
    name: 'wireguard_device_info',
    help: 'Metadata about a device.',
    labelNames: ['device', 'public_key'],
    registers,
    collect() {
      this.reset();
      const key = device.publicKey;
      this.set({ device: ifname, public_key: key === null ? '' : keyToBase64(key) }, 1);
    },
  });
  new promClient.Gauge({
    name: 'wireguard_peer_info',
    help: "Metadata about a peer. The public_key label on peer metrics refers to the peer's public key; not the device's public key.",
    labelNames: ['device', 'public_key', 'endpoint', 'name'],
    registers,
    collect() {
      this.reset();
      for (const p of peers()) {
        this.set({ device: ifname, public_key: p.publicKey, endpoint: p.endpoint ? formatEndpoint(p.endpoint) : '', name: src.peerName?.(p.publicKey) ?? '' }, 1);
      }
    },
  });
  new promClient.Gauge({
    name: 'wireguard_peer_allowed_ips_info',
    help: "Metadata about each of a peer's allowed IP subnets for a given device.",
    labelNames: ['device', 'public_key', 'allowed_ips', 'family'],
    registers,
    collect() {
      this.reset();
      for (const p of peers()) {
        for (const a of p.allowedIps) this.set({ device: ifname, public_key: p.publicKey, allowed_ips: formatPrefix(a), family: a.family === 4 ? 'IPv4' : 'IPv6' }, 1);
      }
    },
  });
  const perPeerCounter = (name: string, help: string, value: (p: ReturnType<Device['peerInfo']>) => number) =>
    new promClient.Counter({
      name,
      help,
      labelNames: ['device', 'public_key'],
      registers,
      collect() {
        this.reset();
        for (const p of peers()) this.inc({ device: ifname, public_key: p.publicKey }, value(p));
      },
    });
  perPeerCounter('wireguard_peer_receive_bytes_total', 'Number of bytes received from a given peer.', (p) => p.rxBytes);
  perPeerCounter('wireguard_peer_transmit_bytes_total', 'Number of bytes transmitted to a given peer.', (p) => p.txBytes);
  new promClient.Gauge({
    name: 'wireguard_peer_last_handshake_seconds',
    help: 'UNIX timestamp for the last handshake with a given peer.',
    labelNames: ['device', 'public_key'],
    registers,
    collect() {
      this.reset();
      for (const p of peers()) this.set({ device: ifname, public_key: p.publicKey }, Math.floor(p.lastHandshake / 1000));
    },
  });

  new promClient.Counter({
    name: 'tsguard_dropped_packets_total',
    help: 'Datagrams and packets the device dropped, by reason (cookieReplySent: an initiation answered with a cookie reply under load).',
    labelNames: ['device', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const r of DROP_REASONS) this.inc({ device: ifname, reason: r }, device.stats[r]);
    },
  });
  new promClient.Counter({
    name: 'tsguard_handshakes_total',
    help: 'Handshakes completed, by our role in them.',
    labelNames: ['device', 'role'],
    registers,
    collect() {
      this.reset();
      for (const role of ['initiator', 'responder'] as const) this.inc({ device: ifname, role }, handshakes[role]);
    },
  });
  new promClient.Counter({
    name: 'tsguard_cookie_replies_sent_total',
    help: 'Cookie replies sent to initiations received under load without a valid mac2.',
    labelNames: ['device'],
    registers,
    collect() {
      this.reset();
      this.inc({ device: ifname }, device.stats.cookieReplySent);
    },
  });
  new promClient.Gauge({
    name: 'tsguard_device_under_load',
    help: '1 while the device is under load (handshakes need a cookie), else 0.',
    labelNames: ['device'],
    registers,
    collect() {
      this.reset();
      this.set({ device: ifname }, device.underLoad ? 1 : 0);
    },
  });
  new promClient.Gauge({
    name: 'tsguard_peers',
    help: 'Configured peers.',
    labelNames: ['device'],
    registers,
    collect() {
      this.reset();
      this.set({ device: ifname }, device.peerCount);
    },
  });
  new promClient.Gauge({
    name: 'tsguard_handshake_queue_length',
    help: 'Handshake messages waiting to be handled.',
    labelNames: ['device'],
    registers,
    collect() {
      this.reset();
      this.set({ device: ifname }, device.pendingHandshakes);
    },
  });
  new promClient.Counter({
    name: 'tsguard_handshake_queue_dropped_total',
    help: 'Handshake messages dropped because the handshake queue was full.',
    labelNames: ['device'],
    registers,
    collect() {
      this.reset();
      this.inc({ device: ifname }, device.stats.handshakeQueueFull);
    },
  });
  return off;
}
