// Helpers for the examples/notes integration test: a private copy of the example with
// its pinned dependencies installed, a throwaway PostgreSQL database, and the separate
// writer process (notes-writer.ts) driven over its stdin/stdout.

import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import pg from "pg";
import { parseDocument } from "yaml";
import { freePort, repoRoot } from "../integration/support.js";
import type { WriterProgress, WriterResult } from "./notes-writer.js";

const execFileP = promisify(execFile);
const EXAMPLE = join(repoRoot, "examples/notes");
const APP_FILES = ["server.js", "package.json", "package-lock.json", "kiln.yaml"];

let installed: Promise<string> | undefined;

/**
 * `npm ci --omit=dev` of examples/notes (pg pinned by its package-lock.json) into a
 * temporary directory, once per process; workspaces copy its node_modules. --prefer-offline
 * uses the npm cache when it holds the packages, so a warm machine needs no network.
 */
export function installNotesDependencies(): Promise<string> {
  installed ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-notes-deps-"));
    for (const f of ["package.json", "package-lock.json"]) cpSync(join(EXAMPLE, f), join(dir, f));
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    await execFileP(npm, ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
      cwd: dir,
      timeout: 120_000,
      env: { ...process.env, npm_config_update_notifier: "false" },
    });
    if (!existsSync(join(dir, "node_modules/pg/package.json"))) throw new Error(`npm ci in ${dir} did not install pg`);
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  })();
  return installed;
}

export interface NotesWorkspace {
  dir: string;
  port: number;
  /** Edit kiln.yaml like a developer would. */
  edit(fn: (d: ReturnType<typeof parseDocument>) => void): void;
  /** A new release: `version` and NOTES_VERSION (declared env, recorded on every row) bumped. */
  release(version: string): void;
  remove(): void;
}

export async function notesWorkspace(opts: { databaseUrl: string; provider: string }): Promise<NotesWorkspace> {
  const deps = await installNotesDependencies();
  const dir = mkdtempSync(join(tmpdir(), `kiln-notes-${opts.provider}-`));
  for (const f of APP_FILES) cpSync(join(EXAMPLE, f), join(dir, f));
  cpSync(join(deps, "node_modules"), join(dir, "node_modules"), { recursive: true, verbatimSymlinks: true });
  const port = await freePort();
  const edit = (fn: (d: ReturnType<typeof parseDocument>) => void) => {
    const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
    fn(doc);
    writeFileSync(join(dir, "kiln.yaml"), doc.toString());
  };
  edit((d) => {
    d.set("listen", `127.0.0.1:${port}`);
    d.setIn(["env", "DATABASE_URL"], opts.databaseUrl);
    // A local instance dials only the host loopback ports its kiln.yaml allows: the test's database.
    const db = new URL(opts.databaseUrl);
    if (db.hostname === "127.0.0.1") d.setIn(["network", "allow"], [`127.0.0.1:${db.port || "5432"}`]);
    if (opts.provider !== "local") d.set("provider", opts.provider);
  });
  return {
    dir,
    port,
    edit,
    release(version: string) {
      edit((d) => {
        d.set("version", version);
        d.setIn(["env", "NOTES_VERSION"], version);
      });
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A fresh database on the server of `baseUrl` (whose role may CREATE DATABASE); drop() removes it even if clients remain. */
export async function scratchDatabase(baseUrl: string, name: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`);
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}

export interface WriterHandle {
  pid: number | undefined;
  /** the latest progress line */
  last(): WriterProgress;
  /** asks for a fresh progress line */
  snapshot(): Promise<WriterProgress>;
  /** stops issuing, waits for in-flight requests, resolves with every id's outcome */
  stop(): Promise<WriterResult>;
}

/** Starts notes-writer.js as a child process; it stops by itself when this process dies (stdin closes). */
export function startWriter(o: { url: string; prefix: string; concurrency: number; durationMs: number; maxRequests: number; timeoutMs?: number; rate?: number }): WriterHandle {
  const outDir = mkdtempSync(join(tmpdir(), "kiln-notes-writer-"));
  const out = join(outDir, "result.json");
  const main = new URL("./notes-writer.js", import.meta.url).pathname;
  const args = [main, "--url", o.url, "--prefix", o.prefix, "--out", out, "--concurrency", String(o.concurrency), "--duration-ms", String(o.durationMs), "--max-requests", String(o.maxRequests), "--timeout-ms", String(o.timeoutMs ?? 10_000), "--rate", String(o.rate ?? 0)];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
  let last: WriterProgress = { t: 0, sent: 0, acked: 0, failed: 0, inFlight: 0 };
  let stderr = "";
  let finished = false;
  const snapshots: ((p: WriterProgress) => void)[] = [];
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  child.stdin.on("error", () => undefined);
  createInterface({ input: child.stdout }).on("line", (text) => {
    let j: WriterProgress & { snapshot?: boolean; done?: boolean };
    try {
      j = JSON.parse(text) as typeof j;
    } catch {
      return;
    }
    if (typeof j.sent !== "number") return;
    last = j;
    if (j.done) finished = true;
    if (j.snapshot || j.done) for (const w of snapshots.splice(0)) w(j);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      finished = true;
      for (const w of snapshots.splice(0)) w(last);
      resolve(code);
    }),
  );
  const result = exited.then((code) => {
    if (code !== 0 || !existsSync(out)) throw new Error(`notes-writer exited ${code} without a result: ${stderr.trim()}`);
    const r = JSON.parse(readFileSync(out, "utf8")) as WriterResult;
    rmSync(outDir, { recursive: true, force: true });
    return r;
  });
  result.catch(() => undefined);
  const send = (cmd: object) => {
    if (!child.stdin.destroyed) child.stdin.write(JSON.stringify(cmd) + "\n");
  };
  return {
    pid: child.pid,
    last: () => last,
    snapshot() {
      if (finished) return Promise.resolve(last); // it reached a bound: these are its final counts
      return new Promise<WriterProgress>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("notes-writer: no snapshot in 5 s")), 5000);
        snapshots.push((p) => {
          clearTimeout(timer);
          resolve(p);
        });
        send({ cmd: "snapshot" });
      });
    },
    async stop() {
      send({ cmd: "stop" });
      child.stdin.end();
      // in-flight requests finish within their own timeout; beyond that, something is wrong
      const timer = setTimeout(() => child.kill("SIGKILL"), (o.timeoutMs ?? 10_000) + 10_000);
      try {
        return await result;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Docker's default bridge network as the engine reports it: the gateway (the host, as containers see it) and the subnet. */
export async function dockerBridge(): Promise<{ gateway: string; subnet: string }> {
  const { stdout } = await execFileP("docker", ["network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"], { timeout: 15_000 });
  const configs = JSON.parse(stdout) as { Subnet?: string; Gateway?: string }[];
  const cfg = configs.find((c) => c.Gateway && c.Subnet && !c.Subnet.includes(":"));
  if (cfg) return { gateway: cfg.Gateway!, subnet: cfg.Subnet! };
  // An engine that has been in swarm mode may report the default bridge's subnet without its
  // gateway: the gateway is then the bridge interface's own address on the host.
  const subnet = configs.find((c) => c.Subnet && !c.Subnet.includes(":"))?.Subnet;
  const opts = await execFileP("docker", ["network", "inspect", "bridge", "--format", '{{index .Options "com.docker.network.bridge.name"}}'], { timeout: 15_000 });
  const ifname = opts.stdout.trim() || "docker0";
  const addr = await execFileP("ip", ["-4", "-o", "addr", "show", "dev", ifname], { timeout: 15_000 });
  const gateway = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr.stdout)?.[1];
  if (!subnet || !gateway) throw new Error(`docker's bridge network has no IPv4 gateway: ${stdout.trim()} (${ifname}: ${addr.stdout.trim()})`);
  return { gateway, subnet };
}

/** Starts tcp-relay.js (listen → a loopback target); stops when this process dies. */
export async function startRelay(o: { listen: string; to: string; allow: string; durationMs: number }): Promise<{ port: number; stop(): void }> {
  const main = new URL("./tcp-relay.js", import.meta.url).pathname;
  const child = spawn(process.execPath, [main, "--listen", o.listen, "--to", o.to, "--allow", o.allow, "--duration-ms", String(o.durationMs)], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (stderr += d));
  child.stdin.on("error", () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcp-relay did not start in 10 s: ${stderr}`)), 10_000);
    child.on("exit", (code) => reject(new Error(`tcp-relay exited ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).once("line", (text) => {
      clearTimeout(timer);
      resolve((JSON.parse(text) as { port: number }).port);
    });
  });
  return {
    port,
    stop() {
      child.stdin.end();
      child.kill("SIGTERM");
    },
  };
}
