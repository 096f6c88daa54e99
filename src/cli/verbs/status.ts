import type { Command } from "commander";
import { ago, context, out, printJson, short, type GlobalOptions } from "../context.js";
import { mark, table } from "../output.js";
import { daemonRouter } from "../../ops/daemons.js";
import { requireCapability } from "../../ops/performer.js";
import { performerFor } from "../../ops/performers.js";
import { renderSwarmStatus } from "../render-swarm.js";

export function register(program: Command): void {
  program
    .command("status")
    .description("show the live release, any rollout in progress and every instance")
    .option("--json", "print the status as JSON (a stable contract, schemaVersion 1)")
    .addHelpText("after", "\nExamples:\n  kiln status\n  kiln status --json | jq '.instances[] | {id, pid, health}'")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      const status = await performerFor(ctx).status();
      if (status.performer === "swarm") return opts.json ? printJson(status.view) : renderSwarmStatus(status.view);
      const s = status.view;
      const router = daemonRouter(ctx.paths) ?? ctx.loaded.spec.router;
      if (opts.json) return printJson({ ...s, router });
      out(`service     ${s.service}`);
      out(`router      ${router === "haproxy" ? "haproxy (HAProxy)" : "builtin (kiln's proxy)"}`);
      out(`proxy       http://${s.proxy.address} (pid ${s.proxy.pid ?? "?"}${s.proxy.reachable ? "" : ", UNREACHABLE"})`);
      out(`controller  pid ${s.controller.pid}${s.controller.standbyFor ? ` — on standby: ${s.controller.standbyFor} acts on this service (shared state); the instances below are its` : ""}`);
      out(`release     ${s.release ? `${s.release.id} ${s.release.ref} ${short(s.release.digest)} live ${ago(s.release.liveAt)}` : "none deployed"}`);
      if (s.rollout) {
        const p = s.rollout.progress ?? {};
        const extra = s.rollout.strategy === "canary" && p.weight !== undefined ? `, canary weight ${p.weight}%` : "";
        out(`rollout     ${s.rollout.kind} to ${s.rollout.target} (${s.rollout.strategy}${extra}), ${s.rollout.phase}: ${(s.rollout.steps ?? []).join("; ")}`);
      }
      out(`instances   ${s.instances.filter((i) => i.inRotation).length} in rotation, ${s.desiredInstances} desired`);
      const t = table(["instance", "pid", "release", "version", "health", "routing", "in rotation", "address"]);
      for (const i of s.instances) t.push([i.id, String(i.pid ?? "-"), i.release, i.version ?? "-", i.health, i.routing, i.inRotation ? "yes" : "no", i.address ?? "-"]);
      out(t.toString());
    });

  program
    .command("history")
    .description("list releases (newest first) with their status and why a failed one failed, then the audit trail: who changed the fleet, with which command and why")
    .option("--json", "print releases, rollouts and changes (the audit trail) as JSON")
    .option("-n, --changes <n>", "how many changes of the audit trail to show", "20")
    .addHelpText("after", "\nExamples:\n  kiln history\n  kiln history --env production   # a promoted release says which environment it came from\n  kiln history --json | jq '.changes[] | {at, actor, action, reason}'")
    .action(async (opts: { json?: boolean; changes: string }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      const h = await performerFor(ctx).history();
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
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      const n = Math.min(5000, Math.max(1, Number(opts.lines) || 50));
      const events = await performerFor(ctx).events(n);
      if (opts.json) return printJson({ events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) });
      for (const e of events) out(`${new Date(e.at).toISOString().replace("T", " ").slice(0, 19)} ${e.level.padEnd(5)} ${e.message}`);
    });

  program
    .command("logs [instance]")
    .description("print an instance's log (default: every instance of the service, newest last); there is no way to exec into one, by design")
    .option("-n, --lines <n>", "last N lines of each log", "50")
    .addHelpText("after", "\nExamples:\n  kiln logs\n  kiln logs hello-r2-1a2b3c -n 200")
    .action(async (instance: string | undefined, opts: { lines: string }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      const n = Math.max(1, Number(opts.lines) || 50);
      const logs = await requireCapability(performerFor(ctx), "logs")(instance, n);
      for (const { id, text } of logs) {
        if (logs.length > 1) out(`==> ${id} <==`);
        for (const l of text.trimEnd().split("\n").slice(-n)) out(l);
      }
    });
}
