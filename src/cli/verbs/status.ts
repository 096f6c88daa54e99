import type { Command } from "commander";
import { ago, context, out, printJson, short, type Context, type GlobalOptions } from "../context.js";
import { table } from "../output.js";
import { daemonRouter, supervisorFile } from "../../ops/daemon-files.js";
import { requireCapability } from "../../ops/performer.js";
import { parseDuration } from "../../config/duration.js";
import type { StatusView } from "../../controller/types.js";
import { isKilnError, KilnError } from "../../errors.js";
import { readPidFile } from "../../home.js";
import { readsThroughRestarts } from "../../ops/reconnect.js";
import { LogFollower } from "../../ops/log-follow.js";
import { digestStatus, statusChanges, type StatusDigest } from "../../ops/status-changes.js";
import { performerFor } from "../../ops/performers.js";

export function register(program: Command): void {
  program
    .command("status")
    .description("show the live release, any rollout in progress and every instance")
    .option("--json", "print the status as JSON (a stable contract, schemaVersion 1; `running: false` when no controller runs)")
    .option("-w, --watch", "keep showing it: redrawn on a terminal, one line per change otherwise (Ctrl-C ends it)")
    .option("--interval <duration>", "with --watch: how often to look", "1s")
    .addHelpText(
      "after",
      "\nWith no controller running, status says so (exit 0) and how to start one.\n\nExamples:\n  kiln status\n  kiln status --json | jq '.instances[] | {id, pid, health}'\n  kiln status --watch                 # a live view while a rollout runs\n  kiln status --watch | tee fleet.log # one line per change: release, rollout phase, each instance",
    )
    .action(async (opts: { json?: boolean; watch?: boolean; interval: string }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const performer = await performerFor(ctx);
      if (opts.watch) {
        if (performer.name !== "controller") throw new KilnError("KILN_E_USAGE", "`kiln status --watch` follows kiln's controller; native Swarm rollouts have their own", { hint: "run `kiln status` again, or `kiln resume` to follow a native rollout" });
        return watchStatus(ctx, opts);
      }
      if (performer.name === "controller" && !(await ctx.client.ping())) return notRunning(ctx, opts.json);
      const status = await performer.status();
      if (status.performer === "swarm") return opts.json ? printJson(status.view) : (await import("../render-swarm.js")).renderSwarmStatus(status.view);
      const s = status.view;
      const router = daemonRouter(ctx.paths) ?? ctx.loaded.spec.router;
      const supervisor = readPidFile(supervisorFile(ctx.paths)) ?? null;
      if (opts.json) return printJson({ ...s, router, supervisor: supervisor && { pid: supervisor } });
      for (const l of statusLines(s, router, supervisor)) out(l);
    });

  program
    .command("history")
    .description("list releases (newest first) with their status and why a failed one failed, then the audit trail: who changed the fleet, with which command and why")
    .option("--json", "print releases, rollouts and changes (the audit trail) as JSON")
    .option("-n, --changes <n>", "how many changes of the audit trail to show", "20")
    .addHelpText("after", "\nExamples:\n  kiln history\n  kiln history --env production   # a promoted release says which environment it came from\n  kiln history --json | jq '.changes[] | {at, actor, action, reason}'")
    .action(async (opts: { json?: boolean; changes: string }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const h = await (await performerFor(ctx)).history();
      const n = Math.max(0, Number(opts.changes) || 0);
      const changes = (h.changes ?? []).slice(0, n);
      if (opts.json) return printJson({ ...h, changes: changes.map((c) => ({ ...c, at: new Date(c.at).toISOString() })) });
      const t = table(["release", "image", "digest", "strategy", "status", "created", "reason"]);
      for (const r of h.releases) {
        const from = r.promotedFrom ? `promoted from ${r.promotedFrom.environment} ${r.promotedFrom.release}` : "";
        t.push([r.id, r.ref, short(r.digest), r.strategy, r.status, ago(r.createdAt), [from, r.reason ?? ""].filter(Boolean).join("; ")]);
      }
      out(t.toString());
      if (changes.length === 0) return;
      out("");
      out("changes (newest first)");
      const c = table(["when", "actor", "action", "release", "result", "reason", "command"]);
      for (const x of changes) c.push([new Date(x.at).toISOString().replace("T", " ").slice(0, 19), x.actor, x.action, x.release ?? "", x.result, x.reason ?? "", x.command]);
      out(c.toString());
    });

  program
    .command("events")
    .description("print the newest events of the service: rollout steps, instances launched and stopped, hooks' output and outcomes, webhook failures")
    .option("-n, --lines <n>", "how many events", "50")
    .option("--json", "print the events as JSON")
    .addHelpText("after", "\nExamples:\n  kiln events -n 200\n  kiln events --json | jq -r '.events[] | select(.level == \"error\") | .message'")
    .action(async (opts: { lines: string; json?: boolean }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const n = Math.min(5000, Math.max(1, Number(opts.lines) || 50));
      const events = await (await performerFor(ctx)).events(n);
      if (opts.json) return printJson({ events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) });
      for (const e of events) out(`${new Date(e.at).toISOString().replace("T", " ").slice(0, 19)} ${e.level.padEnd(5)} ${e.message}`);
    });

  program
    .command("logs [instance]")
    .description("print an instance's log (default: every instance of the service, newest last); there is no way to exec into one, by design")
    .option("-n, --lines <n>", "last N lines of each log", "50")
    // `-f` after `logs` is rewritten to --follow by main (src/cli/args.ts): -f is also the global kiln.yaml flag.
    .option("-f, --follow", "keep printing new lines (Ctrl-C ends it); without an instance, instances launched later (replacements) are followed too; here the kiln.yaml is given with --file")
    .addHelpText("after", "\nFollowing several instances prefixes each line with its instance id.\n\nExamples:\n  kiln logs\n  kiln logs hello-r2-1a2b3c -n 200\n  kiln logs -f                       # the whole service, across deploys\n  kiln logs -f hello-r2-1a2b3c")
    .action(async (instance: string | undefined, opts: { lines: string; follow?: boolean }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const n = Math.max(1, Number(opts.lines) || 50);
      const performer = await performerFor(ctx);
      const logs = await requireCapability(performer, "logs")(instance, n);
      const running = performer.name !== "controller" || (await ctx.client.ping());
      if (!running && !opts.follow) {
        if (logs.length === 0) throw new KilnError("KILN_E_CONTROLLER", "no logs: the controller is not running and no instance has run here", { hint: `start it with \`${upCommand(ctx)}\`, then \`kiln deploy\`` });
        process.stderr.write(`note: the controller is not running: these are the logs instances left (start it with \`${upCommand(ctx)}\`)\n`);
      }
      if (opts.follow) {
        if (!running) process.stderr.write(`note: the controller is not running (start it with \`${upCommand(ctx)}\`); following the logs of instances as they appear\n`);
        return followLogs(ctx, instance, n);
      }
      for (const { id, text } of logs) {
        if (logs.length > 1) out(`==> ${id} <==`);
        for (const l of text.trimEnd().split("\n").slice(-n)) out(l);
      }
    });
}

const upCommand = (ctx: Context) => `kiln up --detach${ctx.loaded.environment ? ` --env ${ctx.loaded.environment}` : ""}`;

function statusLines(s: StatusView, router: string, supervisor: number | null = null): string[] {
  const lines = [
    `service     ${s.service}`,
    `router      ${router === "haproxy" ? "haproxy (HAProxy)" : "builtin (kiln's proxy)"}`,
    `proxy       http://${s.proxy.address} (pid ${s.proxy.pid ?? "?"}${s.proxy.reachable ? "" : ", UNREACHABLE"})`,
    `controller  pid ${s.controller.pid}${supervisor ? `, supervised (pid ${supervisor})` : ", not supervised: a crash is not restarted"}${s.controller.standbyFor ? ` — on standby: ${s.controller.standbyFor} acts on this service (shared state); the instances below are its` : ""}`,
    `release     ${s.release ? `${s.release.id} ${s.release.ref} ${short(s.release.digest)} live ${ago(s.release.liveAt)}` : "none deployed"}`,
  ];
  if (s.rollout) {
    const p = s.rollout.progress ?? {};
    const extra = s.rollout.strategy === "canary" && p.weight !== undefined ? `, canary weight ${p.weight}%` : "";
    lines.push(`rollout     ${s.rollout.kind} to ${s.rollout.target} (${s.rollout.strategy}${extra}), ${s.rollout.phase}: ${(s.rollout.steps ?? []).join("; ")}`);
  }
  if (s.sandbox)
    lines.push(`sandbox     ${s.sandbox === "bwrap" ? "bwrap (own PID, IPC, UTS and mount namespaces, read-only root, seccomp filter, no nested user namespaces)" : "none: an unisolated chroot (kiln up --sandbox none); install bubblewrap and restart kiln to isolate instances"}`);
  if (s.limits) lines.push(`limits      ${s.limits.resources === "none" ? `none (kiln.yaml declares no resources; they would be enforced by ${s.limits.enforcement})` : `${s.limits.resources}, enforced by ${s.limits.enforcement}`}`);
  lines.push(`instances   ${s.instances.filter((i) => i.inRotation).length} in rotation, ${s.desiredInstances} desired`);
  const networks = [...new Set(s.instances.map((i) => i.network).filter((n): n is string => !!n))];
  if (networks.length) lines.push(`network     ${networks.join("; ")}`);
  const t = table(["instance", "pid", "release", "version", "health", "routing", "in rotation", "address"]);
  for (const i of s.instances) t.push([i.id, String(i.pid ?? "-"), i.release, i.version ?? "-", i.health, i.routing, i.inRotation ? "yes" : "no", i.address ?? "-"]);
  lines.push(t.toString());
  return lines;
}

/** No controller answers: say so, and what to do (exit 0: "not running" is an answer, not a failure). */
function notRunning(ctx: Context, json: boolean | undefined): void {
  const pid = readPidFile(ctx.paths.controllerPid);
  const state = pid === undefined ? "not running" : `not answering (pid ${pid} is alive)`;
  const hint = pid === undefined ? `start it with \`${upCommand(ctx)}\`, then \`kiln deploy\`` : "see its log in the home's logs/controller.log; `kiln down` then `kiln up --detach` restarts it";
  if (json) return printJson({ schemaVersion: 1, service: ctx.loaded.service, running: false, controller: null, instances: [], hint });
  out(`service     ${ctx.loaded.service}`);
  out(`controller  ${state}`);
  out(`hint: ${hint}`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `kiln status --watch`: on a terminal the whole status, redrawn when it changes; otherwise
 * (a pipe, a CI log) a time-stamped line per change. Waits out controller restarts. Ends on
 * Ctrl-C (or SIGTERM) with exit 0.
 */
async function watchStatus(ctx: Context, opts: { json?: boolean; interval: string }): Promise<void> {
  let every: number;
  try {
    every = Math.max(200, parseDuration(opts.interval));
  } catch {
    throw new KilnError("KILN_E_USAGE", `--interval: expected a duration like 500ms or 2s, got "${opts.interval}"`, { hint: "e.g. kiln status --watch --interval 2s" });
  }
  await ctx.client.requireRunning();
  const tty = !opts.json && !!process.stdout.isTTY;
  let stop = false;
  const end = () => (stop = true);
  process.once("SIGINT", end);
  process.once("SIGTERM", end);
  const stamp = () => new Date().toISOString().slice(11, 19);
  const read = readsThroughRestarts({ onConnection: (line) => process.stderr.write(`${stamp()} ${line}\n`) });
  const router = daemonRouter(ctx.paths) ?? ctx.loaded.spec.router;
  let prev: StatusDigest | undefined;
  let shown = "";
  while (!stop) {
    const s = await read(() => ctx.client.status());
    const next = digestStatus(s);
    if (opts.json) {
      if (statusChanges(prev, next).length) process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...s, router })}\n`);
    } else if (tty) {
      // Redrawn only when something changed ("live 3m ago" moving counts), so it does not flicker.
      const screen = statusLines(s, router, readPidFile(supervisorFile(ctx.paths)) ?? null).join("\n");
      if (screen !== shown) process.stdout.write(`\x1b[H\x1b[2J${stamp()}  kiln status --watch (Ctrl-C to stop)\n\n${screen}\n`);
      shown = screen;
    } else for (const l of statusChanges(prev, next)) out(`${stamp()} ${l}`);
    prev = next;
    for (let waited = 0; waited < every && !stop; waited += 100) await sleep(100);
  }
}

/**
 * `kiln logs -f`: the last `lines` of each log, then new lines as they are written; with no
 * instance named, logs of instances launched later (a deploy's replacements) join in.
 */
async function followLogs(ctx: Context, instance: string | undefined, lines: number): Promise<void> {
  const performer = await performerFor(ctx);
  const logs = requireCapability(performer, "logs");
  let stop = false;
  const end = () => (stop = true);
  process.once("SIGINT", end);
  process.once("SIGTERM", end);
  const follower = new LogFollower();
  let first = true;
  while (!stop) {
    // Every instance's whole log, each pass: the provider keeps them bounded (local: one file each).
    const now = await logs(instance, 1_000_000).catch((e: unknown) => {
      if (instance !== undefined && isKilnError(e) && e.code === "KILN_E_NOT_FOUND" && !first) return []; // gone since
      throw e;
    });
    const prefix = instance === undefined || now.length > 1;
    for (const { id, line } of follower.next(now, first ? lines : undefined)) out(prefix ? `[${id}] ${line}` : line);
    first = false;
    for (let waited = 0; waited < 500 && !stop; waited += 100) await sleep(100);
  }
}
