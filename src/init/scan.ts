// What `kiln init` looks at in an existing app: its top-level entries,
// package.json, a Dockerfile, and route strings in its source. Reading only;
// the decisions are made from these facts by plan.ts.

import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from "node:fs";
import { basename, dirname, extname, join, posix, relative, sep } from "node:path";
import { scriptCommand, type CommandFact } from "./start-script.js";

export interface TopEntry {
  name: string;
  kind: "file" | "dir" | "other";
  /** a regular file with an exec bit */
  executable: boolean;
  /** starts with the ELF magic */
  elf: boolean;
}

export interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  bin?: string | Record<string, string>;
}

export interface DockerfileFacts {
  entrypoint?: string[];
  cmd?: string[];
  expose?: number;
  workdir?: string;
  user?: string;
  env: Record<string, string>;
}

export interface ProjectFacts {
  /** basename of the directory */
  dirName: string;
  entries: TopEntry[];
  packageJson?: PackageJson;
  dockerfile?: DockerfileFacts;
  /** route strings found in the source, in HEALTH_ROUTES order, with the file each was first seen in */
  healthRoutes: { route: string; file: string }[];
  /** whether any source file mentions PORT (the app likely reads process.env.PORT) */
  readsPort: boolean;
  /** directories (relative) holding an index.html: ".", "public", "dist", … */
  staticRoots: string[];
  /** the default port the source names next to PORT (`process.env.PORT || 5000`), if one */
  sourcePort?: number;
  /** scripts.start's command, resolved (a dependency's bin, or a file of the app) */
  commands?: Record<string, CommandFact>;
  /** the text of .gitignore, when there is one */
  gitignore?: string;
  /** top-level names inside .next (a Next.js build, which `next start` serves), when it is there */
  nextBuild?: string[];
}

export const HEALTH_ROUTES = ["/healthz", "/health", "/up", "/status"] as const;

const SOURCE_EXT = new Set([".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx", ".go", ".py", ".rb", ".rs", ".java", ".kt", ".php", ".ex"]);
const SKIP_DIRS = new Set(["node_modules", ".git", ".kiln", "vendor", "coverage", "dist", "build", "target", ".next", ".cache"]);
const STATIC_DIRS = [".", "public", "dist", "build", "site", "_site", "www", "static"];
const MAX_FILES = 2000;
const MAX_BYTES = 512 * 1024;

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

function isElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

/** A Dockerfile instruction's argument: JSON exec form, or the shell form split on spaces. */
function argv(rest: string): string[] {
  const t = rest.trim();
  if (t.startsWith("[")) {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
    } catch {
      // fall through to the shell form
    }
  }
  return ["/bin/sh", "-c", t];
}

export function parseDockerfile(text: string): DockerfileFacts {
  const facts: DockerfileFacts = { env: {} };
  // Join continuation lines, drop comments; only the last stage matters (it is what runs).
  const lines = text.replace(/\\\r?\n/g, " ").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [op, rest] = [m[1]!.toUpperCase(), m[2]!];
    if (op === "FROM") {
      // a new stage: what the earlier one said does not run
      facts.entrypoint = facts.cmd = facts.expose = facts.workdir = facts.user = undefined;
      facts.env = {};
    } else if (op === "CMD") facts.cmd = argv(rest);
    else if (op === "ENTRYPOINT") facts.entrypoint = argv(rest);
    else if (op === "EXPOSE") {
      const port = Number(/^(\d+)/.exec(rest.trim())?.[1]);
      if (Number.isInteger(port) && port > 0 && port < 65536) facts.expose = port;
    } else if (op === "WORKDIR") facts.workdir = rest.trim();
    else if (op === "USER") facts.user = rest.trim();
    else if (op === "ENV") {
      const kv = /^([A-Za-z_][A-Za-z0-9_]*)(?:=|\s+)(.*)$/.exec(rest.trim());
      if (kv) facts.env[kv[1]!] = kv[2]!.replace(/^"(.*)"$/, "$1");
    }
  }
  return facts;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    if (out.length >= MAX_FILES) return;
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (out.length >= MAX_FILES) return;
      const abs = join(d, name);
      const st = lstatSync(abs);
      if (st.isDirectory()) {
        if (!SKIP_DIRS.has(name) && !name.startsWith(".")) walk(abs, rel ? `${rel}/${name}` : name);
      } else if (st.isFile() && SOURCE_EXT.has(extname(name)) && st.size <= MAX_BYTES) {
        out.push(rel ? `${rel}/${name}` : name);
      }
    }
  };
  walk(dir, "");
  return out;
}

export function scanProject(dir: string): ProjectFacts {
  const entries: TopEntry[] = readdirSync(dir)
    .sort()
    .map((name) => {
      const abs = join(dir, name);
      const st = lstatSync(abs);
      const kind = st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
      const executable = kind === "file" && (st.mode & 0o111) !== 0;
      return { name, kind, executable, elf: executable && isElf(abs) };
    });

  const pkg = readJson(join(dir, "package.json"));
  const packageJson = pkg && typeof pkg === "object" && !Array.isArray(pkg) ? (pkg as PackageJson) : undefined;
  const dockerfile = existsSync(join(dir, "Dockerfile")) ? parseDockerfile(readFileSync(join(dir, "Dockerfile"), "utf8")) : undefined;

  const found = new Map<string, string>();
  let readsPort = false;
  let sourcePort: number | undefined;
  for (const rel of sourceFiles(dir)) {
    const text = readFileSync(join(dir, rel), "utf8");
    if (/\bPORT\b/.test(text)) readsPort = true;
    // process.env.PORT || 5000, env.PORT ?? "5000", Number(process.env.PORT) || 5000
    const dflt = /\bPORT\b["'\]]?\)?\s*(?:\|\||\?\?)\s*["']?([0-9]{2,5})\b/.exec(text);
    if (dflt && sourcePort === undefined && Number(dflt[1]) < 65536) sourcePort = Number(dflt[1]);
    for (const route of HEALTH_ROUTES) {
      if (found.has(route)) continue;
      // the route in a string literal: "/healthz", '/up', `/status`, "GET /health"
      if (new RegExp(`["'\`](?:[A-Z]+ )?${route.replace("/", "\\/")}["'\`?]`).test(text)) found.set(route, rel);
    }
  }
  const healthRoutes = HEALTH_ROUTES.filter((r) => found.has(r)).map((route) => ({ route, file: found.get(route)! }));

  const staticRoots = STATIC_DIRS.filter((d) => {
    try {
      return statSync(join(dir, d, "index.html")).isFile();
    } catch {
      return false;
    }
  });

  const commands: Record<string, CommandFact> = {};
  const cmd = scriptCommand(packageJson?.scripts?.start);
  if (cmd !== undefined) {
    const fact = resolveCommand(dir, cmd, packageJson ?? {});
    if (fact) commands[cmd] = fact;
  }
  let gitignore: string | undefined;
  try {
    if (lstatSync(join(dir, ".gitignore")).isFile()) gitignore = readFileSync(join(dir, ".gitignore"), "utf8");
  } catch {
    // none
  }

  let nextBuild: string[] | undefined;
  try {
    if (lstatSync(join(dir, ".next")).isDirectory()) nextBuild = readdirSync(join(dir, ".next")).sort();
  } catch {
    // no build
  }

  return { dirName: basename(dir), entries, packageJson, dockerfile, healthRoutes, readsPort, staticRoots, sourcePort, commands, gitignore, nextBuild };
}

function firstLine(path: string): string {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(200);
    const n = readSync(fd, b, 0, 200, 0);
    return b.subarray(0, n).toString("utf8").split("\n")[0]!;
  } finally {
    closeSync(fd);
  }
}

/** Node runs it: a JS file name, or a shebang naming node (`#!/usr/bin/env node`). */
function nodeProgram(path: string): { node: boolean; shebang?: string } {
  const line = firstLine(path);
  const shebang = line.startsWith("#!") ? line.trim() : undefined;
  if (shebang) return { node: /\bnode(js)?\b/.test(shebang), shebang };
  return { node: [".js", ".cjs", ".mjs"].includes(extname(path)) };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** "node_modules/@scope/pkg/lib/x.js" → "@scope/pkg" */
function packageOf(rel: string): string | undefined {
  const parts = rel.split("/");
  if (parts[0] !== "node_modules" || parts.length < 3) return undefined;
  return parts[1]!.startsWith("@") ? `${parts[1]}/${parts[2]}` : parts[1];
}

/** Does the package's own code (not its dependencies) read process.env.PORT? Bounded: 400 files. */
function packageReadsPort(pkgDir: string): boolean {
  let seen = 0;
  const walk = (d: string): boolean => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return false;
    }
    for (const name of names) {
      if (seen >= 400) return false;
      const abs = join(d, name);
      const st = lstatSync(abs);
      if (st.isDirectory() && name !== "node_modules" && !name.startsWith(".")) {
        if (walk(abs)) return true;
      } else if (st.isFile() && st.size <= MAX_BYTES && ([".js", ".cjs", ".mjs"].includes(extname(name)) || extname(name) === "")) {
        seen++;
        if (/\benv(?:\.PORT\b|\[["']PORT["']\])/.test(readFileSync(abs, "utf8"))) return true;
      }
    }
    return false;
  };
  return walk(pkgDir);
}

/**
 * A start script's command → the file node runs. A path is a file of the app; a name is
 * looked up as npm would put it on PATH: node_modules/.bin/NAME (a symlink to the package's
 * bin file), else the "bin" field of each package in node_modules that the app depends on.
 */
export function resolveCommand(dir: string, cmd: string, pkg: PackageJson): CommandFact | undefined {
  const inside = (abs: string) => {
    const rel = relative(dir, abs);
    return rel && !rel.startsWith("..") && !rel.startsWith(sep) ? rel.split(sep).join("/") : undefined;
  };
  if (cmd.includes("/")) {
    const rel = inside(join(dir, cmd));
    if (!rel || !isFile(join(dir, rel))) return undefined;
    return { file: posix.normalize(rel), via: `package.json scripts.start (${cmd})`, ...nodeProgram(join(dir, rel)) };
  }
  const dev = (name: string) => pkg.devDependencies?.[name] !== undefined && pkg.dependencies?.[name] === undefined;
  const fact = (abs: string, via: string): CommandFact | undefined => {
    const rel = inside(abs);
    if (!rel || !isFile(abs)) return undefined;
    const name = packageOf(rel);
    return {
      file: rel,
      via,
      package: name,
      devOnly: name !== undefined && dev(name),
      readsPort: name !== undefined && packageReadsPort(join(dir, "node_modules", name)),
      ...nodeProgram(abs),
    };
  };

  const link = join(dir, "node_modules", ".bin", cmd);
  try {
    if (lstatSync(link).isSymbolicLink()) {
      const found = fact(join(dirname(link), readlinkSync(link)), `node_modules/.bin/${cmd}`);
      if (found) return found;
    }
  } catch {
    // no .bin entry: look at the packages' "bin" fields
  }
  const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
  for (const name of names) {
    const meta = readJson(join(dir, "node_modules", name, "package.json")) as PackageJson | undefined;
    const bin = meta?.bin;
    const file = typeof bin === "string" ? (name.replace(/^@[^/]+\//, "") === cmd ? bin : undefined) : bin?.[cmd];
    if (typeof file === "string") {
      const found = fact(join(dir, "node_modules", name, file), `the "bin" of ${name}'s package.json`);
      if (found) return found;
    }
  }
  return undefined;
}
