// Types of render.mjs for the TypeScript tests that import it.
import type { Results } from './ratio.mjs';

/** Column label of a pair. */
export declare function pairLabel(id: string, a: string, b: string): string;
/** The markdown report of a run. */
export declare function renderMarkdown(r: Results): string;
/** The SVG bar chart of TCP throughput per pair. */
export declare function renderSvg(r: Results): string;
/** Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a file. */
export declare function replaceSection(path: string, name: string, body: string): void;
