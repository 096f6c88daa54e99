// package.json scripts.start → the argv an image runs without a shell. Pure.
//
// npm runs a start script with `sh -c` and node_modules/.bin on PATH; a kiln
// image has neither. So the script is read as the small part of shell that
// start scripts use (words, quotes, leading VAR=value, $VAR/${VAR}/${VAR:-d}),
// its command is looked up in what scan.ts found (a file of the app, or a
// dependency's bin resolved to its JS file), and anything the image could not
// do the same way is reported with the exact token, never dropped.
//
// Worked examples (the table tests in test/init/start-script.test.ts):
//   "node server.js"                      → node /app/server.js
//   "NODE_ENV=production node --enable-source-maps src/index.js"
//                                          → node --enable-source-maps /app/src/index.js, env NODE_ENV=production
//   "json-server --port 3000 db.json"     → node /app/node_modules/json-server/lib/cli/bin.js --port ${PORT:-3000} db.json
//                                            (port 3000: kiln passes each instance its own port in $PORT)
//   "http-server public -c-1"             → node /app/node_modules/http-server/bin/http-server public -c-1
//   "fastify start -a ${HOST:-127.0.0.1} -p $PORT app.js"
//                                          → node …/fastify-cli/cli.js start -a ${HOST:-127.0.0.1} -p ${PORT} app.js
//                                            (${…} left for kiln-argv.cjs to expand from the instance's environment)
//   "node a.js && node b.js"              → refused: "&&" runs a second command
//   "tsc && node dist/x.js"               → refused, likewise; "nodemon x.js" (a devDependency) → refused

import { posix } from "node:path";

/** One piece of a shell word: literal text, or a parameter expansion. */
export type WordPart = { kind: "text"; text: string } | { kind: "var"; name: string; default?: string };

export interface ScriptProblem {
  /** the exact token of the script that could not be translated */
  token: string;
  message: string;
}

export type ParsedScript =
  | { ok: true; assignments: { name: string; value: WordPart[] }[]; words: WordPart[][] }
  | { ok: false; problems: ScriptProblem[] };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const OPERATORS = ["&&", "||", ">>", "2>&1", "2>", ";", "|", "&", "<", ">"];

function operatorMessage(op: string): string {
  if (op === "&&" || op === "||" || op === ";" || op === "&") return "runs a second command: an image runs one program, without a shell";
  if (op === "|") return "pipes into another command: an image runs one program, without a shell";
  return "redirects through the shell: an image has none (kiln keeps each instance's output in its log)";
}

/**
 * Split a start script into shell words. Supported: spaces, '…', "…", backslash escapes,
 * $NAME, ${NAME}, ${NAME:-default} (default literal). Everything else that makes the shell do
 * work (operators, $(…), backticks, globs, ~, other ${…} forms, $1/$@) is a problem.
 */
export function parseStartScript(script: string): ParsedScript {
  const problems: ScriptProblem[] = [];
  const words: WordPart[][] = [];
  let word: WordPart[] | undefined;
  const text = (t: string) => {
    word ??= [];
    const last = word[word.length - 1];
    if (last?.kind === "text") last.text += t;
    else word.push({ kind: "text", text: t });
  };
  const end = () => {
    if (word) words.push(word);
    word = undefined;
  };
  /** a $… at s[i]; returns the index after it */
  const dollar = (s: string, i: number): number => {
    const rest = s.slice(i + 1);
    const name = NAME.exec(rest);
    if (name) {
      word ??= [];
      word.push({ kind: "var", name: name[0] });
      return i + 1 + name[0].length;
    }
    if (rest.startsWith("{")) {
      const close = rest.indexOf("}");
      const token = close < 0 ? s.slice(i) : s.slice(i, i + 2 + close);
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}`"'\\]*))?\}$/.exec(rest.slice(0, close + 1));
      if (close >= 0 && m) {
        word ??= [];
        word.push({ kind: "var", name: m[1]!, ...(m[2] !== undefined ? { default: m[2] } : {}) });
      } else {
        problems.push({ token, message: "only ${NAME} and ${NAME:-default} (a plain default) are translated: the image has no shell to do more" });
      }
      return close < 0 ? s.length : i + 2 + close;
    }
    if (rest.startsWith("(")) {
      const close = rest.indexOf(")");
      problems.push({ token: close < 0 ? s.slice(i) : s.slice(i, i + 2 + close), message: "command substitution needs a shell: the image has none" });
      return close < 0 ? s.length : i + 2 + close;
    }
    if (/^[0-9@*#?$!-]/.test(rest)) {
      problems.push({ token: s.slice(i, i + 2), message: "positional and special parameters need a shell: the image has none" });
      return i + 2;
    }
    text("$");
    return i + 1;
  };

  const s = script;
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === " " || c === "\t" || c === "\n") {
      end();
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => s.startsWith(o, i));
    if (op) {
      problems.push({ token: op, message: operatorMessage(op) });
      end();
      i += op.length;
      continue;
    }
    if (c === "#" && word === undefined) break; // a comment, to the end (npm scripts are one line)
    if (c === "\\") {
      if (i + 1 < s.length) text(s[i + 1]!);
      i += 2;
      continue;
    }
    if (c === "'") {
      const close = s.indexOf("'", i + 1);
      if (close < 0) {
        problems.push({ token: s.slice(i), message: "an unclosed quote" });
        break;
      }
      text(s.slice(i + 1, close));
      i = close + 1;
      continue;
    }
    if (c === '"') {
      word ??= [];
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; ) {
        if (s[j] === "\\" && j + 1 < s.length && '"\\$`'.includes(s[j + 1]!)) {
          text(s[j + 1]!);
          j += 2;
        } else if (s[j] === "$") j = dollar(s, j);
        else if (s[j] === "`") {
          const close = s.indexOf("`", j + 1);
          problems.push({ token: close < 0 ? s.slice(j) : s.slice(j, close + 1), message: "command substitution needs a shell: the image has none" });
          j = close < 0 ? s.length : close + 1;
        } else text(s[j++]!);
      }
      if (j >= s.length) {
        problems.push({ token: s.slice(i), message: "an unclosed quote" });
        break;
      }
      i = j + 1;
      continue;
    }
    if (c === "$") {
      i = dollar(s, i);
      continue;
    }
    if (c === "`") {
      const close = s.indexOf("`", i + 1);
      problems.push({ token: close < 0 ? s.slice(i) : s.slice(i, close + 1), message: "command substitution needs a shell: the image has none" });
      i = close < 0 ? s.length : close + 1;
      continue;
    }
    if (c === "*" || c === "?" || (c === "~" && word === undefined)) {
      let j = i;
      while (j < s.length && !/\s/.test(s[j]!)) j++;
      const token = s.slice(s.lastIndexOf(" ", i) + 1, j);
      problems.push({ token, message: c === "~" ? "~ is expanded by the shell: the image has none; write the path" : "a glob is expanded by the shell: the image has none; list the files" });
      word = undefined;
      i = j;
      continue;
    }
    text(c);
    i++;
  }
  end();
  if (problems.length) return { ok: false, problems };

  // Leading NAME=value words are environment for the command (unquoted name, like the shell).
  const assignments: { name: string; value: WordPart[] }[] = [];
  while (words.length > 1) {
    const first = words[0]!;
    const head = first[0];
    const m = head?.kind === "text" ? /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(head.text) : null;
    if (!m) break;
    const rest: WordPart = { kind: "text", text: (head as { text: string }).text.slice(m[0].length) };
    const value = [rest, ...first.slice(1)].filter((p) => p.kind !== "text" || p.text !== "");
    assignments.push({ name: m[1]!, value });
    words.shift();
  }
  if (words.length === 0 || words[0]!.length === 0) return { ok: false, problems: [{ token: script, message: "no command to run" }] };
  return { ok: true, assignments, words };
}

/** The word as plain text when it has no expansion, else undefined. */
export function literal(word: readonly WordPart[]): string | undefined {
  return word.every((p) => p.kind === "text") ? word.map((p) => (p as { text: string }).text).join("") : undefined;
}

/**
 * A word as one argv element for the image: literal text as is, expansions as
 * ${NAME} / ${NAME:-default}, which kiln-argv.cjs (see argv-preload.ts) expands at launch.
 */
export function argText(word: readonly WordPart[]): string {
  return word.map((p) => (p.kind === "text" ? p.text : p.default === undefined ? `\${${p.name}}` : `\${${p.name}:-${p.default}}`)).join("");
}

/** The command word the script runs (after VAR=value and `npx`), for scan.ts to resolve. */
export function scriptCommand(script: string | undefined): string | undefined {
  if (!script) return undefined;
  const p = parseStartScript(script);
  if (!p.ok) return undefined;
  const words = p.words.map(literal);
  const i = words[0] === "npx" ? words.findIndex((w, k) => k > 0 && !w?.startsWith("-")) : 0;
  return i < 0 ? undefined : words[i];
}

/** What scan.ts found about the script's command. */
export interface CommandFact {
  /** the file node runs, relative to the app (e.g. node_modules/json-server/lib/cli/bin.js, bin/www) */
  file?: string;
  /** how the file was found, for the comment in kiln.yaml */
  via: string;
  /** the npm package that provides it, when it is a dependency's bin */
  package?: string;
  /** listed in devDependencies only: `npm ci --omit=dev` leaves it out of node_modules */
  devOnly?: boolean;
  /** the file is a Node program (a .js/.cjs/.mjs name, or a node shebang) */
  node: boolean;
  /** the package's code reads process.env.PORT */
  readsPort?: boolean;
  /** the first line when it is a shebang, for the message when it is not Node */
  shebang?: string;
}

// Node options that take the next word as their value.
const NODE_VALUE_FLAGS = new Set(["-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--title", "--env-file", "--inspect-port", "--stack-size"]);
const NODE_NAMES = new Set(["node", "nodejs"]);
const PORT_FLAGS = new Set(["--port", "-p"]);
const PACKAGE_MANAGERS = new Set(["npm", "yarn", "pnpm", "bun"]);

export interface StartTranslation {
  /** node's own flags from the script (before the file) */
  nodeFlags: string[];
  /** the JS file node runs, relative to the app */
  file: string;
  args: string[];
  /** NAME=value words from the script, baked into the image */
  env: Record<string, string>;
  /** the port the script names (--port N, ${PORT:-N}, PORT=N) */
  port?: number;
  /** some argument holds ${…}: it must be expanded at launch */
  expands: boolean;
  /** the dependency the file belongs to, when it is one */
  package?: string;
  via: string;
  /** what the user should know: how a token was translated, or what the app may miss */
  notes: string[];
}

export type TranslateResult = { ok: true; start: StartTranslation } | { ok: false; problems: ScriptProblem[] };

/** Variables kiln passes to every instance (PORT, KILN_INSTANCE_ID) or some (HOST, on Docker). */
export const KILN_ENV = new Set(["PORT", "HOST", "KILN_INSTANCE_ID"]);

/**
 * Translate a start script given what scan found about its command (`commands`,
 * keyed by the command word). Worked examples at the top of this file.
 */
export function translateStartScript(script: string, commands: Readonly<Record<string, CommandFact>>): TranslateResult {
  const parsed = parseStartScript(script);
  if (!parsed.ok) return parsed;
  const problems: ScriptProblem[] = [];
  const notes: string[] = [];
  let port: number | undefined;
  const portOf = (s: string | undefined) => {
    const n = Number(s);
    if (s && /^[0-9]+$/.test(s) && n > 0 && n < 65536) port ??= n;
  };

  const env: Record<string, string> = {};
  for (const a of parsed.assignments) {
    const value = literal(a.value);
    if (value === undefined) problems.push({ token: `${a.name}=${argText(a.value)}`, message: "an assignment from another variable is evaluated by the shell: write the value" });
    else if (a.name === "PORT") {
      portOf(value);
      notes.push(`PORT=${value}: not baked in, kiln passes each instance its port in $PORT (${value} is image.port)`);
    } else env[a.name] = value;
  }

  let words = parsed.words;
  if (literal(words[0]!) === "npx") {
    const i = words.findIndex((w, k) => k > 0 && !literal(w)?.startsWith("-"));
    words = i < 0 ? [] : words.slice(i);
  }
  const cmd = words[0] ? literal(words[0]) : undefined;
  if (cmd === undefined) {
    problems.push({ token: words[0] ? argText(words[0]) : script, message: "the command itself comes from a variable: kiln needs to know the program" });
    return { ok: false, problems };
  }

  const nodeFlags: string[] = [];
  let file: string | undefined;
  let via: string;
  let pkg: string | undefined;
  let rest: WordPart[][];
  if (NODE_NAMES.has(posix.basename(cmd))) {
    let j = 1;
    for (; j < words.length; j++) {
      const w = literal(words[j]!);
      if (w === undefined || !w.startsWith("-")) break;
      nodeFlags.push(w);
      if (NODE_VALUE_FLAGS.has(w) && j + 1 < words.length) {
        const v = literal(words[++j]!);
        if (v === undefined) problems.push({ token: argText(words[j]!), message: `a variable as the value of node's ${w}: write the value` });
        else nodeFlags.push(v);
      }
    }
    const f = words[j] ? literal(words[j]!) : undefined;
    if (f === undefined) {
      problems.push({ token: words[j] ? argText(words[j]!) : script, message: words[j] ? "the file node runs comes from a variable: write the path" : "node without a file to run" });
      return { ok: false, problems };
    }
    file = posix.normalize(f);
    if (file.startsWith("../") || file.startsWith("/")) problems.push({ token: f, message: "the file is outside the app: kiln bakes only the app's directory" });
    via = "package.json scripts.start";
    rest = words.slice(j + 1);
  } else if (PACKAGE_MANAGERS.has(cmd)) {
    problems.push({ token: cmd, message: `${cmd} is not in the image (only node is): make scripts.start the command that script runs` });
    return { ok: false, problems };
  } else {
    const fact = commands[cmd];
    if (!fact?.file) {
      const what = cmd.includes("/") ? `${cmd} is not a file of the app` : `${cmd} is not in node_modules/.bin nor a dependency's "bin"`;
      problems.push({ token: cmd, message: `${what}: run \`npm install\` first, or start the app with \`node FILE\`` });
      return { ok: false, problems };
    }
    if (!fact.node) {
      problems.push({ token: cmd, message: `${fact.file} is not a Node program${fact.shebang ? ` (${fact.shebang})` : ""}: the node base runs only Node` });
      return { ok: false, problems };
    }
    if (fact.devOnly) {
      problems.push({ token: cmd, message: `${fact.package} is a devDependency: \`npm ci --omit=dev\` leaves it out of the image; move it to dependencies, or start the app with \`node FILE\`` });
      return { ok: false, problems };
    }
    file = fact.file;
    via = fact.via;
    pkg = fact.package;
    rest = words.slice(1);
    if (nodeFlags.length === 0 && fact.package === undefined && cmd.includes("/")) via = `${cmd}, run by node`;
  }

  const args: string[] = [];
  let expands = false;
  let portArg = false;
  const seen = new Set<string>();
  for (let k = 0; k < rest.length; k++) {
    const w = rest[k]!;
    const lit = literal(w);
    if (lit !== undefined) {
      if (lit.includes("${")) problems.push({ token: lit, message: 'a literal "${" would be expanded at launch: kiln cannot pass it unchanged' });
      const eq = /^(--port)=([0-9]+)$/.exec(lit);
      if (eq) {
        portOf(eq[2]);
        args.push(`${eq[1]}=\${PORT:-${eq[2]}}`);
        notes.push(`${lit} → ${eq[1]}=\${PORT:-${eq[2]}}: kiln passes each instance its own port in $PORT`);
        expands = portArg = true;
        continue;
      }
      args.push(lit);
      const next = rest[k + 1] ? literal(rest[k + 1]!) : undefined;
      if (PORT_FLAGS.has(lit) && next !== undefined && /^[0-9]+$/.test(next)) {
        portOf(next);
        args.push(`\${PORT:-${next}}`);
        notes.push(`${lit} ${next} → ${lit} \${PORT:-${next}}: kiln passes each instance its own port in $PORT`);
        expands = portArg = true;
        k++;
      }
      continue;
    }
    expands = true;
    for (const p of w) {
      if (p.kind !== "var" || seen.has(p.name)) continue;
      seen.add(p.name);
      if (p.name === "PORT") {
        portArg = true;
        portOf(p.default);
      } else if (!KILN_ENV.has(p.name)) {
        notes.push(
          p.default === undefined
            ? `$${p.name}: kiln does not set it; declare it in kiln.yaml env (it expands to "" otherwise)`
            : `$${p.name}: from kiln.yaml env at launch, else ${JSON.stringify(p.default)}`,
        );
      }
    }
    args.push(argText(w));
  }
  if (problems.length) return { ok: false, problems };
  if (!portArg && pkg !== undefined) {
    notes.push(
      commands[cmd]?.readsPort
        ? `${pkg} reads $PORT itself: kiln passes each instance its port there`
        : `the script passes no port and ${pkg}'s code does not read $PORT: it will not listen where kiln expects; add \`--port $PORT\` (or its own flag) to scripts.start`,
    );
  }
  return { ok: true, start: { nodeFlags, file, args, env, port, expands, package: pkg, via, notes } };
}
