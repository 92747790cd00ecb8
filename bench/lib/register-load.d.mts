// Types of register-load.mjs for the TypeScript tests that import it.

/** An agent as POST /v1/register takes it. */
export interface LoadAgent {
  agent_id: string;
  public_key: string;
}

/** One registration's outcome. */
export interface RegisterResult {
  i: number;
  status?: number;
  reason?: string;
  ip?: string;
  ms?: number;
  error?: string;
}

/** `n` distinct agents `PREFIX<i>` with fresh X25519 public keys. */
export declare function makeAgents(n: number, prefix: string): LoadAgent[];
/** Register every agent, `concurrency` at a time; resolves with the wall time in seconds. */
export declare function registerAll(
  url: string,
  token: string,
  agents: LoadAgent[],
  concurrency: number,
  opts?: { each?: boolean; onResult?: (r: RegisterResult) => void },
): Promise<number>;
