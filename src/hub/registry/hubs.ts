/**
 * The hubs of a fleet sharing one registry (`hubs` table): each hub
 * announces its key, WireGuard endpoint, API URL and certificate pin at
 * start; peers name their home hub by its row id.
 * @module
 */

import type { Tx } from './store.js';
import type { HubRecord } from './types.js';

interface HubRow {
  id: number;
  public_key: string;
  endpoint: string | null;
  api_url: string | null;
  cert_pin: string | null;
  last_seen: number;
}

const toHub = (r: HubRow): HubRecord => ({ id: r.id, publicKey: r.public_key, endpoint: r.endpoint, apiUrl: r.api_url, certPin: r.cert_pin, lastSeen: r.last_seen });

/** Insert or update the hub with `publicKey`; returns its record. */
export async function upsertHubTx(tx: Tx, h: Omit<HubRecord, 'id' | 'lastSeen'>, now: number): Promise<HubRecord> {
  const r = await tx.get<HubRow>(
    `INSERT INTO hubs (public_key, endpoint, api_url, cert_pin, last_seen) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (public_key) DO UPDATE SET endpoint = excluded.endpoint, api_url = excluded.api_url, cert_pin = excluded.cert_pin, last_seen = excluded.last_seen
     RETURNING *`,
    [h.publicKey, h.endpoint, h.apiUrl, h.certPin, now],
  );
  return toHub(r!);
}

/** Every hub, by id. */
export async function listHubsTx(tx: Tx): Promise<HubRecord[]> {
  return (await tx.all<HubRow>('SELECT * FROM hubs ORDER BY id')).map(toHub);
}
