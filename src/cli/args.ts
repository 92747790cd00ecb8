/**
 * The command-line framework of `tsguard`: commands are declared in a table
 * (name, arguments, options with their help text, a run function), parsed
 * with node:util `parseArgs`, and the same table gives `--help`, the
 * man-style `tsguard help COMMAND` and the bash completion. Another module's
 * flags slot in by adding an entry to a command's `options`.
 * @module
 */

import { parseArgs } from 'node:util';

/** A command-line mistake: exit status 2, a short message, a pointer to the help. */
export class UsageError extends Error {
  override name = 'UsageError';
  /** The command whose help to point at (e.g. `tsguard hub device add`), if known. */
  command?: string;
  /** @param message what is wrong, in one line; @param command the command it concerns */
  constructor(message: string, command?: string) {
    super(message);
    if (command !== undefined) this.command = command;
  }
}

/** One `--flag` of a command. */
export interface OptionSpec {
  /** A flag with a value, or a switch. */
  type: 'string' | 'boolean';
  /** One-letter alias (`-f`). */
  short?: string;
  /** May be given several times (values collected in order). */
  multiple?: boolean;
  /** Placeholder of the value in help texts, e.g. `FILE`; `FILE`, `DIR`, `PATH` and `CONFIG` complete file names. */
  arg?: string;
  /** One or two sentences: what it does, its default. */
  help: string;
}

/** Flag name (without `--`) → spec. */
export type Options = Record<string, OptionSpec>;

/** Parsed flag values, by flag name. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What bash completes for a command's positional arguments. */
export interface Completion {
  /** Fixed words (e.g. `show`'s selectors). */
  words?: readonly string[];
  /** Names of running interfaces (sockets in /var/run/wireguard). */
  interfaces?: boolean;
  /** File names. */
  files?: boolean;
}

/** A command: a leaf of the command table. */
export interface Command {
  /** The word that selects it (`add` in `tsguard hub device add`). */
  name: string;
  /** Synopsis of the positional arguments, e.g. `NAME` or `[IFNAME|all|interfaces] [SELECTOR]`. */
  args?: string;
  /** One line for command lists. */
  summary: string;
  /** Paragraphs (separated by blank lines) for `tsguard help COMMAND`. */
  description?: string;
  /** Example command lines. */
  examples?: readonly string[];
  /** Its flags (the group's shared flags and `--help` are added). */
  options?: Options;
  /** How many positional arguments it takes: [min, max]. Default [0, 0]. */
  positionals?: readonly [number, number];
  /** Bash completion of the positional arguments. */
  complete?: Completion;
  /** Run it; resolves with the exit status. */
  run(values: Values, positionals: string[]): Promise<number>;
}

/** A group of commands (`tsguard`, `tsguard hub`, `tsguard hub device`). */
export interface Group {
  /** The word that selects it. */
  name: string;
  /** One line for command lists. */
  summary: string;
  /** Paragraphs for `tsguard help GROUP`. */
  description?: string;
  /** Flags every command below accepts (e.g. `--data-dir`). */
  options?: Options;
  /** Subcommands and subgroups. */
  commands: (Command | Group)[];
}

/** Type guard: a group rather than a command. */
export function isGroup(c: Command | Group): c is Group {
  return 'commands' in c;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'print this help and do nothing else' };

/** A command found in the table, with its full name and every option it accepts. */
export interface Resolved {
  /** The group or command. */
  node: Command | Group;
  /** Words from the program name down, e.g. `['tsguard', 'hub', 'show']`. */
  path: string[];
  /** Shared options of the enclosing groups, then the node's own, then `--help`. */
  options: Options;
  /** The arguments after the command words. */
  rest: string[];
}

/**
 * Find the command `argv` names. Flags before the command words are carried
 * over (`tsguard hub --data-dir D show` is `tsguard hub show --data-dir D`),
 * so a string flag's value is never taken for a command word.
 * With `lenient`, an unknown word ends the walk instead (for `--help`).
 * @throws UsageError for an unknown command word
 */
export function resolve(root: Group, argv: readonly string[], lenient = false): Resolved {
  let node: Command | Group = root;
  const path = [root.name];
  // The root's own flags (--version) are not inherited by the commands.
  let options: Options = {};
  const carried: string[] = [];
  let i = 0;
  while (isGroup(node) && i < argv.length) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('-') && a !== '-') {
      carried.push(a);
      const spec = options[a.replace(/^--?/, '').replace(/=.*/, '')];
      if (spec?.type === 'string' && !a.includes('=') && i + 1 < argv.length) carried.push(argv[++i]!);
      i++;
      continue;
    }
    const next: Command | Group | undefined = node.commands.find((c) => c.name === a);
    if (next === undefined) {
      if (lenient) break;
      const list = node.commands.map((c) => c.name).join(', ');
      throw new UsageError(`unknown command "${[...path, a].join(' ')}" (${path.join(' ')} has: ${list})`, path.join(' '));
    }
    node = next;
    path.push(a);
    options = { ...options, ...node.options };
    i++;
  }
  if (node === root) options = { ...root.options };
  return { node, path, options: { ...options, help: HELP }, rest: [...carried, ...argv.slice(i)] };
}

/** True when `-h`/`--help` is among the arguments (before a `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '-h' || a === '--help') return true;
  }
  return false;
}

/**
 * Parse a command's arguments with node:util `parseArgs` (strict), turning
 * its errors into short {@link UsageError}s that name the flag.
 */
export function parseCommand(r: Resolved, args: readonly string[]): { values: Values; positionals: string[] } {
  const name = r.path.join(' ');
  const opts: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [k, s] of Object.entries(r.options)) opts[k] = { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options: opts, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new UsageError(describeParseError(e, r.options), name);
  }
  const [min, max] = isGroup(r.node) ? [0, 0] : (r.node.positionals ?? [0, 0]);
  const n = parsed.positionals.length;
  if (n > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`, name);
  if (n < min) throw new UsageError(`missing ${r.node && !isGroup(r.node) && r.node.args ? r.node.args.split(' ')[n]!.replace(/[[\]]/g, '') : 'an argument'}`, name);
  return parsed;
}

function describeParseError(e: unknown, options: Options): string {
  const err = e as NodeJS.ErrnoException;
  const flag = /'(-[^' ]+)/.exec(err.message ?? '')?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag ?? err.message}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const spec = flag ? options[flag.replace(/^--?/, '')] : undefined;
      if (spec?.type === 'boolean') return `${flag} takes no value`;
      return `${flag ?? 'an option'} needs a value${spec?.arg ? ` (${spec.arg})` : ''}`;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return err.message;
    default:
      return (e as Error).message;
  }
}

// ─── help texts ─────────────────────────────────────────────────────────────

/** Wrap a paragraph to `width` columns with `indent`. */
function wrap(text: string, indent: string, width = 80): string {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    if (/^\s/.test(para)) {
      // Pre-formatted line (an example or a list): kept as it is.
      out.push(indent + para);
      continue;
    }
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && indent.length + line.length + 1 + word.length > width) {
        out.push(indent + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(indent + line);
  }
  return out.join('\n');
}

function flagText(name: string, s: OptionSpec): string {
  const long = `--${name}${s.type === 'string' ? ` ${s.arg ?? 'VALUE'}` : ''}`;
  return s.short ? `-${s.short}, ${long}` : long;
}

function synopsis(r: Pick<Resolved, 'node' | 'path' | 'options'>): string {
  const name = r.path.join(' ');
  if (isGroup(r.node)) return `${name} COMMAND [OPTIONS]`;
  const hasOptions = Object.keys(r.options).some((k) => k !== 'help');
  return [name, r.node.args, hasOptions ? '[OPTIONS]' : ''].filter(Boolean).join(' ');
}

function commandList(g: Group): string[] {
  const rows = g.commands.map((c) => [isGroup(c) ? `${c.name} ...` : [c.name, c.args].filter(Boolean).join(' '), c.summary] as const);
  const w = Math.min(34, Math.max(...rows.map(([a]) => a.length)) + 2);
  return rows.map(([a, s]) => (a.length + 2 > w ? `  ${a}\n${' '.repeat(w + 2)}${s}` : `  ${a.padEnd(w)}${s}`));
}

/** The `--help` text: synopsis, summary, commands or options. */
export function formatUsage(r: Pick<Resolved, 'node' | 'path' | 'options'>): string {
  const out = [`Usage: ${synopsis(r)}`, '', wrap(r.node.summary, '')];
  if (isGroup(r.node)) out.push('', 'Commands:', ...commandList(r.node));
  const opts = Object.entries(r.options);
  if (opts.length) {
    out.push('', 'Options:');
    const w = Math.min(30, Math.max(...opts.map(([k, s]) => flagText(k, s).length)) + 2);
    for (const [k, s] of opts) {
      const f = flagText(k, s);
      const help = wrap(s.help, ' '.repeat(w + 2)).trimStart();
      out.push(f.length + 2 > w ? `  ${f}\n${' '.repeat(w + 2)}${help}` : `  ${f.padEnd(w)}${help}`);
    }
  }
  out.push('', `"${r.path[0]} help${r.path.length > 1 ? ' ' + r.path.slice(1).join(' ') : ''}" shows the full manual page.`);
  return out.join('\n') + '\n';
}

/** The man-style page of `tsguard help COMMAND`. */
export function formatManual(r: Pick<Resolved, 'node' | 'path' | 'options'>, seeAlso: readonly string[] = []): string {
  const name = r.path.join(' ');
  const out = ['NAME', `    ${name} - ${r.node.summary}`, '', 'SYNOPSIS', `    ${synopsis(r)}`];
  if (r.node.description) out.push('', 'DESCRIPTION', ...r.node.description.split('\n\n').map((p) => wrap(p, '    ')).join('\n\n').split('\n'));
  if (isGroup(r.node)) out.push('', 'COMMANDS', ...commandList(r.node).map((l) => `  ${l}`));
  const opts = Object.entries(r.options);
  if (opts.length) {
    out.push('', 'OPTIONS');
    for (const [k, s] of opts) out.push(`    ${flagText(k, s)}`, wrap(s.help, '        '), '');
    out.pop();
  }
  if (!isGroup(r.node) && r.node.examples?.length) out.push('', 'EXAMPLES', ...r.node.examples.map((e) => `    ${e}`));
  if (isGroup(r.node)) out.push('', `Run "${r.path[0]} help ${[...r.path.slice(1), 'COMMAND'].join(' ')}" for a command's page.`);
  if (seeAlso.length) out.push('', 'SEE ALSO', `    ${seeAlso.join(', ')}`);
  return out.join('\n') + '\n';
}

// ─── running ────────────────────────────────────────────────────────────────

/**
 * Run the command `argv` names: `--help` prints its help and nothing else
 * happens; otherwise its flags are parsed and it runs.
 * @throws UsageError for command-line mistakes (the caller exits 2)
 */
export async function dispatch(root: Group, argv: readonly string[], out: (s: string) => void): Promise<number> {
  const r = resolve(root, argv, wantsHelp(argv));
  if (wantsHelp(r.rest)) {
    out(formatUsage(r));
    return 0;
  }
  if (isGroup(r.node)) {
    // A group without its subcommand: the unknown flags are the likelier mistake, so parse them first.
    parseCommand(r, r.rest);
    throw new UsageError(`missing a command: ${r.node.commands.map((c) => c.name).join(', ')}`, r.path.join(' '));
  }
  const { values, positionals } = parseCommand(r, r.rest);
  return r.node.run(values, positionals);
}
