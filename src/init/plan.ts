// Project facts → the kiln.yaml `kiln init` writes (and, for a static site,
// the tiny server it adds). Pure: every choice is made here from data, and
// each is explained in a comment in the file, so the user can check it.

import { posix } from "node:path";
import { KilnError } from "../errors.js";
import { formatPackagesLabel, PACKAGES_LABEL, type PinnedPackage } from "../generate/index.js";
import { ARGV_PRELOAD_FILE, argvPreloadSource } from "./argv-preload.js";
import type { ProjectFacts, TopEntry } from "./scan.js";
import { translateStartScript, type ScriptProblem } from "./start-script.js";
import { STATIC_SERVER_FILE, staticServerSource } from "./static-server.js";

export interface InitFile {
  path: string;
  content: string;
  /** an existing file of the user's, extended (.gitignore): written even without --force */
  update?: boolean;
}

export type Runtime = "dockerfile" | "node" | "static" | "binary";

export interface InitPlan {
  name: string;
  runtime: Runtime;
  /** what was found and chosen, one line each, for the CLI to print */
  summary: string[];
  /** kiln.yaml first */
  files: InitFile[];
}

export interface InitOptions {
  packages?: PinnedPackage[];
}

const NODE = "/usr/local/bin/node";
const WORKDIR = "/app";
/**
 * The port written when the app names none (no --port, PORT=, EXPOSE, or `PORT || N` in its
 * source): Node's habitual 3000, and not 8080, which the hello example's proxy listens on.
 */
export const DEFAULT_PORT = 3000;

// Never part of the image: metadata, tests, docs, secrets, and what kiln writes itself.
const EXCLUDE = new Set([
  "node_modules", "kiln.yaml", "Dockerfile", "Containerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yaml",
  "test", "tests", "__tests__", "spec", "coverage", "docs", "examples", "tmp", "log", "logs",
]);
const LOCKFILES = ["package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"];
const JS_ENTRIES = ["server.js", "index.js", "app.js", "main.js", "server.mjs", "index.mjs", "app.mjs", "main.mjs"];

/** "@acme/My_App" → "my-app"; falls back to "app". */
export function serviceName(raw: string): string {
  const base = raw.replace(/^@[^/]+\//, "").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+/, "").replace(/-+$/, "").slice(0, 63);
  return /^[a-z][a-z0-9-]{0,62}$/.test(base) ? base.replace(/-+$/, "") : "app";
}

function version(raw: string | undefined): string {
  return raw && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(raw) ? raw : "0.1.0";
}

/** A YAML scalar: plain when that reads back as the same string, else double-quoted (JSON is valid YAML). */
export function yamlString(s: string): string {
  const plain = /^[A-Za-z_/.][A-Za-z0-9_./@+-]*$/.test(s) && !/^(true|false|yes|no|on|off|null|y|n|~)$/i.test(s);
  return plain ? s : JSON.stringify(s);
}

function flowList(items: readonly string[]): string {
  return `[${items.map((i) => JSON.stringify(i)).join(", ")}]`;
}

function plainList(items: readonly string[]): string {
  return `[${items.map(yamlString).join(", ")}]`;
}

/** `node server.js --flag` → {file: "server.js", args: ["--flag"]}; anything but `[VAR=v…] node [flags] FILE …` → undefined. */
export function entryFromStartScript(start: string | undefined): { file: string; args: string[] } | undefined {
  const t = start ? translateStartScript(start, {}) : undefined;
  return t?.ok ? { file: t.start.file, args: t.start.args } : undefined;
}

function has(facts: ProjectFacts, name: string): TopEntry | undefined {
  return facts.entries.find((e) => e.name === name);
}

/** Top-level entries that go into the app layer. */
function appEntries(facts: ProjectFacts, skip: ReadonlySet<string>): string[] {
  return facts.entries
    .filter((e) => e.kind !== "other" && !e.name.startsWith(".") && !EXCLUDE.has(e.name) && !skip.has(e.name))
    .filter((e) => !/^(README|CHANGELOG|CONTRIBUTING)(\..*)?$/i.test(e.name) && !/\.md$/i.test(e.name))
    .map((e) => e.name);
}

interface Start {
  runtime: Runtime;
  entrypoint: string[];
  cmd: string[];
  why: string;
  workdir: string;
  port?: number;
  user?: string;
  env: Record<string, string>;
  /** extra files written by init */
  extra: InitFile[];
  /** what the user should know about how the start was translated, or why scripts.start was not used */
  notes?: string[];
  /** a dependency's server (json-server, http-server…): no health route of the app's own to find */
  dependency?: string;
}

function inWorkdir(workdir: string, p: string): string {
  return p.startsWith("/") ? p : posix.join(workdir, p);
}

const PACKAGE_RUNNERS = new Set(["npm", "yarn", "pnpm", "npx"]);

/**
 * Dockerfile CMD/ENTRYPOINT → the same argv; `node` becomes the node base's
 * binary. `npm start` and the like are left to package.json (there is no npm
 * in the image); a shell form is refused (there is no shell either).
 */
function fromDockerfile(facts: ProjectFacts): Start | undefined {
  const d = facts.dockerfile;
  if (!d || (!d.cmd && !d.entrypoint)) return undefined;
  const workdir = dockerWorkdir(facts);
  const argv = [...(d.entrypoint ?? []), ...(d.cmd ?? [])];
  if (PACKAGE_RUNNERS.has(posix.basename(argv[0] ?? ""))) return undefined;
  if (argv[0] === "/bin/sh" && argv[1] === "-c") {
    throw new KilnError("KILN_E_USAGE", "the Dockerfile starts the app through a shell (CMD/ENTRYPOINT in shell form)", {
      hint: 'kiln images have no shell: write it in exec form, e.g. CMD ["node", "server.js"], or start it from package.json',
    });
  }
  const isNode = argv[0] === "node" || argv[0] === "nodejs" || argv[0] === NODE;
  const split = d.entrypoint ? d.entrypoint.length : 1;
  const abs = argv.map((a, i) => {
    if (i === 0) return isNode ? NODE : inWorkdir(workdir, a);
    if (isNode && i === 1 && !a.startsWith("-")) return inWorkdir(workdir, a);
    return a;
  });
  return { runtime: "dockerfile", entrypoint: abs.slice(0, split), cmd: abs.slice(split), why: "from the Dockerfile's ENTRYPOINT/CMD", workdir, env: {}, extra: [] };
}

function dockerWorkdir(facts: ProjectFacts): string {
  const w = facts.dockerfile?.workdir;
  return w && w.startsWith("/") ? posix.normalize(w) : WORKDIR;
}

/** scripts.start translated for an image without a shell (start-script.ts), or the problems that stop it. */
function fromStartScript(facts: ProjectFacts): Start | ScriptProblem[] | undefined {
  const script = facts.packageJson?.scripts?.start;
  if (script === undefined) return undefined;
  const t = translateStartScript(script, facts.commands ?? {});
  if (!t.ok) return t.problems;
  const s = t.start;
  if (!has(facts, s.file.split("/")[0]!)) return [{ token: s.file, message: "no such file in the app" }];
  const preload = s.expands ? ["--require", inWorkdir(WORKDIR, ARGV_PRELOAD_FILE)] : [];
  const notes = [...s.notes];
  if (s.expands) notes.push(`${ARGV_PRELOAD_FILE} (node --require) expands \${…} in the arguments from the instance's environment at launch: the image has no shell`);
  return {
    runtime: "node",
    entrypoint: [NODE, ...preload, ...s.nodeFlags],
    cmd: [inWorkdir(WORKDIR, s.file), ...s.args],
    why: `from package.json scripts.start (${JSON.stringify(script)})${s.package ? `: ${s.package}'s own server, via ${s.via}` : ""}`,
    workdir: WORKDIR,
    port: s.port,
    env: { NODE_ENV: "production", ...s.env },
    extra: s.expands ? [{ path: ARGV_PRELOAD_FILE, content: argvPreloadSource() }] : [],
    notes,
    dependency: s.package,
  };
}

function fromNode(facts: ProjectFacts): Start | undefined {
  const pkg = facts.packageJson;
  if (pkg?.main && has(facts, pkg.main.split("/")[0]!)) {
    return { runtime: "node", entrypoint: [NODE], cmd: [inWorkdir(WORKDIR, posix.normalize(pkg.main))], why: "from package.json main", workdir: WORKDIR, env: { NODE_ENV: "production" }, extra: [] };
  }
  const js = JS_ENTRIES.find((f) => has(facts, f)?.kind === "file");
  if (js) {
    return { runtime: "node", entrypoint: [NODE], cmd: [inWorkdir(WORKDIR, js)], why: `${js}, the usual name of a Node entry point`, workdir: WORKDIR, env: { NODE_ENV: "production" }, extra: [] };
  }
  return undefined;
}

function fromStatic(facts: ProjectFacts): Start | undefined {
  const root = facts.staticRoots[0];
  if (root === undefined) return undefined;
  return {
    runtime: "static",
    entrypoint: [NODE],
    cmd: [inWorkdir(WORKDIR, STATIC_SERVER_FILE)],
    why: `a static site (${root === "." ? "" : `${root}/`}index.html), served by ${STATIC_SERVER_FILE}, a tiny Node server kiln init wrote`,
    workdir: WORKDIR,
    env: {},
    extra: [{ path: STATIC_SERVER_FILE, content: staticServerSource(root === "." ? "." : root) }],
  };
}

function fromBinary(facts: ProjectFacts): Start | undefined {
  const bins = facts.entries.filter((e) => e.kind === "file" && e.elf);
  const bin = bins.find((b) => b.name === facts.dirName) ?? bins[0];
  if (!bin) return undefined;
  return { runtime: "binary", entrypoint: [inWorkdir(WORKDIR, bin.name)], cmd: [], why: `the executable ${bin.name}`, workdir: WORKDIR, env: {}, extra: [] };
}

/** A Dockerfile's EXPOSE, numeric non-root USER and ENV hold whichever way the app is started. */
function withDockerfileSettings(start: Start, facts: ProjectFacts): Start {
  const d = facts.dockerfile;
  if (!d) return start;
  const user = d.user && /^[0-9]+(:[0-9]+)?$/.test(d.user) && !/^0(:|$)/.test(d.user) ? d.user : undefined;
  const env = Object.fromEntries(Object.entries(d.env).filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)));
  return { ...start, port: d.expose ?? start.port, user: user ?? start.user, env: { ...start.env, ...env } };
}

/** A Next.js build without what next start does not read (the build cache: tens of MB; the trace). */
function nextBuildEntries(facts: ProjectFacts): string[] {
  return (facts.nextBuild ?? []).filter((n) => n !== "cache" && n !== "trace").map((n) => `.next/${n}`);
}

/** .gitignore with .kiln/ (the image store and rootfs cache, ~100 MB an image) added; undefined when it is there. */
export function gitignoreWithKiln(existing: string | undefined): InitFile | undefined {
  if (existing === undefined) return { path: ".gitignore", content: "# kiln's local state: baked images, their unpacked root filesystems, instance logs\n.kiln/\n" };
  if (/^\/?\.kiln\/?\s*$/m.test(existing)) return undefined;
  return { path: ".gitignore", content: `${existing}${existing === "" || existing.endsWith("\n") ? "" : "\n"}.kiln/\n`, update: true };
}

export function planInit(facts: ProjectFacts, opts: InitOptions = {}): InitPlan {
  const docker = fromDockerfile(facts);
  const script = docker ? undefined : fromStartScript(facts);
  const refused = Array.isArray(script) ? script : [];
  const fallback = docker ?? (Array.isArray(script) ? undefined : script) ?? fromNode(facts) ?? fromStatic(facts) ?? fromBinary(facts);
  if (!fallback) {
    if (refused.length) {
      throw new KilnError("KILN_E_USAGE", `cannot translate package.json scripts.start (${JSON.stringify(facts.packageJson?.scripts?.start)}) to run without a shell`, {
        details: refused.map((p) => ({ where: "package.json scripts.start", message: `${JSON.stringify(p.token)}: ${p.message}` })),
        hint: "kiln images run one program, without a shell or npm: make scripts.start `node FILE …` or `TOOL …` (a dependency's bin), with $PORT / ${PORT:-N} for the port, or write kiln.yaml by hand (`kiln schema` lists every key)",
      });
    }
    throw new KilnError("KILN_E_USAGE", `cannot tell how to start the app in ${facts.dirName}/`, {
      hint: "kiln init looks for a Dockerfile CMD/ENTRYPOINT, package.json (scripts.start or main), server.js/index.js, an index.html, or an executable; write kiln.yaml by hand otherwise (`kiln schema` lists every key)",
    });
  }
  const found: Start = refused.length
    ? { ...fallback, notes: [...(fallback.notes ?? []), ...refused.map((p) => `scripts.start not used: ${JSON.stringify(p.token)}: ${p.message}`)] }
    : fallback;
  const start = withDockerfileSettings(found, facts);
  const pkg = facts.packageJson;
  const name = serviceName(pkg?.name ?? facts.dirName);
  const deps = Object.keys(pkg?.dependencies ?? {}).length;
  const hasNodeModules = has(facts, "node_modules")?.kind === "dir";
  const useDeps = deps > 0 || (hasNodeModules && start.runtime !== "binary" && start.runtime !== "static");
  const configDir = has(facts, "config")?.kind === "dir";
  const skip = new Set<string>(configDir ? ["config"] : []);
  const nextBuild = start.dependency === "next" ? nextBuildEntries(facts) : [];
  const files = start.runtime === "static" && facts.staticRoots[0] !== "."
    ? [STATIC_SERVER_FILE, facts.staticRoots[0]!]
    : [...new Set([...appEntries(facts, skip), ...start.extra.map((f) => f.path), ...nextBuild])].sort();
  if (start.dependency === "next") {
    start.notes = [...(start.notes ?? []), facts.nextBuild ? ".next: the build `next start` serves, without its cache (run `next build` before every bake)" : "no .next build found: run `next build` before `kiln bake` and `kiln init --force` (next start serves .next)"];
  }
  const health = facts.healthRoutes[0];
  // A dependency's server has no /healthz of its own; its root page is what answers.
  const healthPath = start.runtime === "static" ? "/healthz" : health?.route ?? (start.dependency ? "/" : "/healthz");
  const port = start.port ?? facts.sourcePort ?? DEFAULT_PORT;
  const portWhy = start.port !== undefined
    ? facts.dockerfile?.expose === start.port ? "the Dockerfile's EXPOSE" : "the port scripts.start names"
    : facts.sourcePort !== undefined ? "the default next to PORT in the source" : `no port named by the app: kiln init's default, ${DEFAULT_PORT}`;
  const listen = port >= 1024 ? port : DEFAULT_PORT;
  const user = start.user ?? "1000:1000";
  const lock = LOCKFILES.find((l) => has(facts, l));
  const ignore = gitignoreWithKiln(facts.gitignore);

  const L: string[] = [];
  /** a line of YAML with its comment aligned at column 34 */
  const line = (code: string, why?: string) => L.push(why === undefined ? code : `${code.padEnd(33)} # ${why}`);
  line(`# kiln.yaml for ${name}, written by \`kiln init\`. Every choice below says where it came from: read them,`);
  line("# then `kiln validate` and `kiln bake`. `kiln schema` lists every key with its default.");
  line(`name: ${name}`, pkg?.name ? "from package.json name" : "the directory's name");
  line(`version: ${yamlString(version(pkg?.version))}`, pkg?.version && version(pkg.version) === pkg.version ? "from package.json version: bump it for every release" : "bump it for every release: a version's image never changes");
  line("");
  line("image:");
  line("  base: node", `kiln's Node runtime base: the node binary at ${NODE}, nothing else (no shell)`);
  if (useDeps) {
    line("  dependencies: [node_modules]", `the dependencies layer${lock ? ` (${lock})` : ""}: run \`npm ci --omit=dev\` before baking${hasNodeModules ? "" : " (node_modules is not there yet)"}`);
  }
  line("  # the app layer: top-level files and directories, without tests, docs, dotfiles (.env!) and node_modules");
  line(`  files: ${plainList(files)}`);
  if (configDir) line("  config: [config]", "baked in too: changing config means a new image");
  line(`  workdir: ${start.workdir}`);
  for (const n of start.notes ?? []) line(`  # note: ${n}`);
  line(`  # ${start.why}:`);
  line(`  entrypoint: ${flowList(start.entrypoint)}`);
  if (start.cmd.length) line(`  cmd: ${flowList(start.cmd)}`);
  const env = Object.keys(start.env).sort();
  if (env.length) line(`  env: { ${env.map((k) => `${k}: ${yamlString(start.env[k]!)}`).join(", ")} }`, "baked into the image");
  line(`  user: ${JSON.stringify(user)}`, `never root${start.user ? " (the Dockerfile's USER)" : ""}`);
  const listens = facts.readsPort || start.runtime === "static" || start.dependency !== undefined || start.extra.some((f) => f.path === ARGV_PRELOAD_FILE);
  line(`  port: ${port}`, `${portWhy}; kiln passes the real port in $PORT${listens ? "" : " — the app must listen on it (no PORT found in the source)"}`);
  if (opts.packages?.length) {
    line("  labels:");
    line("    # Debian packages a VM image of this service installs (`kiln generate packer`), pinned on this machine");
    line(`    ${PACKAGES_LABEL}: ${JSON.stringify(formatPackagesLabel(opts.packages))}`);
  }
  line("");
  line("instances: 3", "the fleet: identical, disposable instances of the one image");
  line(`listen: 127.0.0.1:${listen}`, "where kiln's proxy serves the fleet");
  line("# env: { KEY: value }", "declared at launch, not baked in");
  line("# volumes: [{ name: data, path: /data }]", "the only writable, persistent paths: state lives outside the image");
  line("");
  line("health:");
  line(
    `  path: ${healthPath}`,
    start.runtime === "static" ? `${STATIC_SERVER_FILE} answers it`
    : health ? `found in ${health.file}`
    : start.dependency ? `${start.dependency}'s root page; no /healthz, /health, /up or /status route found in the app`
    : "no /healthz, /health, /up or /status route found: add one that answers 2xx when ready",
  );
  line("  interval: 1s");
  line("  timeout: 2s");
  line("  healthyThreshold: 2");
  line("  unhealthyThreshold: 3");
  line("");
  line("strategy:");
  line("  type: rolling", "or blue-green: a whole new fleet, switched at once, the old one kept warm");
  line("  rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 2s, deadline: 5m, autoRollback: true }");
  line("  blueGreen: { keepPreviousFor: 10m, promotion: auto, deadline: 5m, autoRollback: true }");

  const summary = [
    `runtime: ${start.runtime === "dockerfile" ? "Dockerfile" : start.runtime}, started with ${[...start.entrypoint, ...start.cmd].join(" ")} (${start.why})`,
    `health: ${healthPath}${start.runtime === "static" || health ? "" : start.dependency ? ` (${start.dependency}'s root page: no health route found in the app)` : " (default: no route found in the source)"}`,
    ...(useDeps ? [`dependencies: node_modules${hasNodeModules ? "" : " (run `npm ci --omit=dev` before `kiln bake`)"}`] : []),
    ...(opts.packages?.length ? [`packages: ${formatPackagesLabel(opts.packages)}`] : []),
    ...start.extra.map((f) => `added ${f.path}`),
    ...(ignore ? [`${ignore.update ? "added .kiln/ to" : "wrote"} .gitignore (kiln's image store and rootfs cache, ~100 MB an image)`] : []),
    ...(start.notes ?? []).map((n) => `note: ${n}`),
  ];
  return { name, runtime: start.runtime, summary, files: [{ path: "kiln.yaml", content: `${L.join("\n")}\n` }, ...start.extra, ...(ignore ? [ignore] : [])] };
}
