/**
 * Enrollment tokens and agent registration inside a transaction: token
 * authentication (constant time), usability, agent credentials (only their
 * SHA-256 is stored) and the re-key rule.
 * @module
 */

import { generateCredential, hashesEqual, hashSecret, parseToken } from '../tokens.js';
import { addPeerTx, addReads, updatePeerTx } from './peers.js';
import { markChanged, peerLookup, peerRowById, toRecord, type Ctx, type PeerRow, type TokenRow } from './rows.js';
import type { Statement } from './store.js';
import { RegistryError, type RegisterAgentResult, type TokenInfo, type TokenState } from './types.js';

/** Compared against when a token id is unknown (constant-time path). */
const UNKNOWN_HASH = new Uint8Array(32);

/** The public view of a token row at `now`. */
export function tokenInfo(r: TokenRow, now: number): TokenInfo {
  const state: TokenState =
    r.revoked_at !== null ? 'revoked' : r.expires_at !== null && r.expires_at <= now ? 'expired' : r.max_uses !== null && r.uses >= r.max_uses ? 'used-up' : 'valid';
  return { id: r.id, createdAt: r.created_at, expiresAt: r.expires_at, maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at, comment: r.comment, state };
}

/** The read of {@link authenticToken}, to batch with others; its first row goes to {@link authenticRow}. */
function tokenLookup(token: unknown): Statement {
  return { sql: 'SELECT * FROM tokens WHERE id = ?', params: [parseToken(token)?.id ?? ''] };
}

/** Find the token and check its secret in constant time; not its usability. @throws RegistryError `UNAUTHORIZED` */
export async function authenticToken(ctx: Pick<Ctx, 'tx'>, token: unknown): Promise<TokenRow> {
  const st = tokenLookup(token);
  return authenticRow(token, await ctx.tx.get<TokenRow>(st.sql, st.params));
}

/** {@link authenticToken} with its read done: `found` is the first row of {@link tokenLookup}. @throws RegistryError `UNAUTHORIZED` */
function authenticRow(token: unknown, found: TokenRow | undefined): TokenRow {
  const parsed = parseToken(token);
  const given = hashSecret(parsed?.secret ?? '');
  const r = parsed ? found : undefined;
  // Compare even when the id is unknown, so both cases take the same time.
  const ok = hashesEqual(given, r ? r.secret_hash : UNKNOWN_HASH) && r !== undefined && parsed !== null;
  if (!ok || !r) throw new RegistryError('UNAUTHORIZED', 'the enrollment token is not valid (unknown or mistyped); create one with "tsguard hub token create"');
  if (r.revoked_at !== null) throw new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} was revoked; create a new one with "tsguard hub token create"`);
  return r;
}

function unusable(r: TokenRow, now: number): RegistryError | null {
  const s = tokenInfo(r, now).state;
  if (s === 'expired') return new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} expired at ${new Date(r.expires_at!).toISOString()}; create a new one with "tsguard hub token create"`);
  if (s === 'used-up') return new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} has been used ${r.uses} of ${r.max_uses} times; create a new one with "tsguard hub token create"`);
  return null;
}

/** A validated registration. */
export interface Registration {
  token: string;
  name: string;
  key: string;
  labels: Record<string, string> | undefined;
  credential: string | undefined;
  homeHub: number | null;
}

/**
 * What {@link registerAgentTx} reads first, in one batch: the token, the
 * agent's row, and for a new agent the key's owner and the expired quarantine.
 */
export function registrationReads(g: Registration, now: number): Statement[] {
  return [tokenLookup(g.token), peerLookup('agent', g.name), ...addReads(g.key, now)];
}

/**
 * Register an agent (see `Registry.registerAgent`); `first`: the rows of
 * {@link registrationReads} when already read (else they are read here).
 * @throws RegistryError `UNAUTHORIZED`, `IDENTITY_CONFLICT`, `NAME_CONFLICT`, `KEY_CONFLICT`, `SUBNET_EXHAUSTED`
 */
export async function registerAgentTx(ctx: Ctx, g: Registration, first?: unknown[][]): Promise<RegisterAgentResult> {
  const [toks, peers, ...forAdd] = first ?? (await ctx.tx.batch(registrationReads(g, ctx.now)));
  const tok = authenticRow(g.token, toks![0] as TokenRow | undefined);
  const existing = peers![0] as PeerRow | undefined;
  const returning = existing !== undefined && existing.public_key === g.key;
  if (existing !== undefined && !returning && existing.source === 'registration') {
    const presented = g.credential !== undefined && existing.credential_hash !== null && hashesEqual(hashSecret(g.credential), existing.credential_hash);
    if (!presented && existing.rekey_allowed === 0) {
      throw new RegistryError(
        'IDENTITY_CONFLICT',
        `agent ${g.name} is already registered (${existing.ipv4}) with another key, and this request ${g.credential === undefined ? 'carries no' : 'carries the wrong'} agent credential. ` +
          `If this is the same machine with a new key, restore its state directory (the credential is kept there); if the key was lost, an operator runs "tsguard hub agent rekey ${g.name}" to allow one re-key; ` +
          `if it is a different machine, give it another agent id (--agent-id)`,
        `agent/${g.name}`,
      );
    }
  }
  const bad = unusable(tok, ctx.now);
  if (bad) {
    const enrolled = await ctx.tx.get<{ token_id: string; public_key: string }>('SELECT token_id, public_key FROM enrollments WHERE name = ?', [g.name]);
    if (!(returning && enrolled?.token_id === tok.id && enrolled.public_key === g.key)) throw bad;
  }
  // A new agent gets its credential in the insert; a re-keyed one (or one that had none) below.
  let credential = existing === undefined ? generateCredential() : undefined;
  let r = await addPeerTx(
    ctx,
    {
      kind: 'agent',
      name: g.name,
      key: g.key,
      ip: null,
      routes: [],
      labels: g.labels ?? {},
      comment: null,
      enabled: true,
      source: 'registration',
      homeHub: g.homeHub,
      credentialHash: credential === undefined ? null : hashSecret(credential),
    },
    existing ?? null,
    forAdd,
  );
  if (existing !== undefined && g.labels !== undefined && (await updatePeerTx(ctx, existing, { labels: g.labels }))) {
    r = { ...toRecord(await peerRowById(ctx.tx, r.id)), created: false, rekeyed: r.rekeyed, ...(r.previousPublicKey ? { previousPublicKey: r.previousPublicKey } : {}) };
  }
  if (existing !== undefined && g.homeHub !== null && existing.home_hub !== g.homeHub) {
    await ctx.tx.later('UPDATE peers SET home_hub = ? WHERE id = ?', [g.homeHub, r.id]);
    r = { ...r, homeHub: g.homeHub };
    markChanged(ctx, r);
  }
  if (existing !== undefined && (r.rekeyed || existing.credential_hash === null)) {
    credential = generateCredential();
    await ctx.tx.later('UPDATE peers SET credential_hash = ?, rekey_allowed = 0 WHERE id = ?', [hashSecret(credential), r.id]);
  }
  const consumed = r.created || r.rekeyed;
  if (consumed) {
    await ctx.tx.later('UPDATE tokens SET uses = uses + 1 WHERE id = ?', [tok.id]);
    await ctx.tx.later(
      'INSERT INTO enrollments (name, token_id, public_key, at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET token_id = excluded.token_id, public_key = excluded.public_key, at = excluded.at',
      [g.name, tok.id, g.key, ctx.now],
    );
  }
  return { ...r, tokenId: tok.id, consumed, ...(credential !== undefined ? { credential } : {}) };
}
