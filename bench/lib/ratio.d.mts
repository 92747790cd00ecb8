// Types of ratio.mjs for the TypeScript tests that import it.

/** Results of a run, as far as the comparison reads them (bench/results/*.json). */
export type Results = Record<string, any>;

/** A pair as the comparison sees it: its id and the key of its responder in `handshakes_per_s`. */
export interface PairRef {
  id: string;
  handshakes?: string | null;
}

/** One figure, tsguard against the best wireguard-go pair on it. */
export interface Against {
  wggo: string | null;
  wggo_value: number | null;
  tsguard: number | null;
  ratio: number | null;
  difference: number | null;
}

/** The figures compared, in report order. */
export declare const METRICS: readonly { key: string; label: string; higher: boolean; get(r: Results, p: PairRef): unknown }[];
/** UDP results per pair at `mbps` offered (also from older results with one rate in `udp`). */
export declare function udpAt(r: Results, mbps: number): Record<string, any> | undefined;
/** The offered UDP rates of a run, ascending. */
export declare function udpRates(r: Results): number[];
/** Every figure of {@link METRICS} against the best of `wggoPairs` on it. */
export declare function againstFastest(r: Results, wggoPairs: PairRef[], tsguard?: PairRef): Record<string, Against>;
