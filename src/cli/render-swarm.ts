// Text rendering of what the Swarm performer returns (status, plan); --json prints the data as is.

import type { SwarmUpdateConfig } from "../providers/swarm/index.js";
import type { SwarmPerformer } from "../ops/swarm/performer.js";
import { meshHint, type IngressProbe } from "../ops/swarm/performer.js";
import type { Recovery } from "../ops/performer.js";
import { ago, out, short } from "./context.js";
import { table } from "./output.js";

const secs = (ns: number) => `${Math.round(ns / 1e6) / 1000}s`;

interface SwarmStatusView {
  service: string;
  release?: { id: string; ref: string; digest: string; liveAt?: string };
  recovery?: Recovery;
  desiredInstances: number;
  swarm?: { serviceId: string; version: number; update?: { state: string; message?: string } };
  ingress?: IngressProbe;
  releases: { release: string; running: number; starting: number; failed: number }[];
  tasks: { id: string; slot?: number; release?: string; version?: string; state: string; desiredState: string; error?: string }[];
}

export function renderSwarmStatus(view: Record<string, unknown>): void {
  const s = view as unknown as SwarmStatusView;
  out(`service     ${s.service} (Docker Swarm${s.swarm ? ` service ${s.swarm.serviceId.slice(0, 12)}, version ${s.swarm.version}` : ": not created"})`);
  out(`release     ${s.release ? `${s.release.id} ${s.release.ref} ${short(s.release.digest)} live ${ago(s.release.liveAt)}` : "none deployed"}`);
  if (s.recovery) out(`rollout     ${s.recovery.rollout.kind} to ${s.recovery.rollout.target} (rollout ${s.recovery.rollout.id}) was left running by an interrupted kiln: ${s.recovery.outcome}${s.recovery.reason ? ` — ${s.recovery.reason}` : ""}`);
  if (s.swarm?.update) out(`update      ${s.swarm.update.state}${s.swarm.update.message ? `: ${s.swarm.update.message}` : ""}`);
  if (s.ingress) out(`ingress     ${s.ingress.address} ${s.ingress.answering ? "answering" : `NOT ANSWERING (${s.ingress.error ?? s.ingress.status})`}`);
  out(`tasks       ${s.releases.map((g) => `${g.release}: ${g.running} running${g.starting ? `, ${g.starting} starting` : ""}${g.failed ? `, ${g.failed} failed` : ""}`).join("; ") || "none"}; ${s.desiredInstances} desired`);
  const t = table(["task", "slot", "release", "version", "state", "desired", "error"]);
  for (const k of s.tasks) t.push([k.id.slice(0, 12), String(k.slot ?? "-"), k.release ?? "-", k.version ?? "-", k.state, k.desiredState, k.error ?? ""]);
  out(t.toString());
  if (s.ingress && !s.ingress.answering) out(`warning: ${meshHint(s.ingress)}`);
}

function updateLine(label: string, u: SwarmUpdateConfig): string {
  return `${label.padEnd(16)} order ${u.Order}, parallelism ${u.Parallelism}, delay ${secs(u.Delay)}, monitor ${secs(u.Monitor)}, failure_action ${u.FailureAction}, max_failure_ratio ${u.MaxFailureRatio}`;
}

export function renderSwarmPlan(plan: Awaited<ReturnType<SwarmPerformer["plan"]>>): void {
  const { from, to, updateConfig: u } = plan;
  out(`plan: ${from ? `Swarm service ${plan.service} (${from.release ?? "?"}, ${from.replicas} replicas)` : "no service yet"} → ${to.ref}${to.digest ? ` ${short(to.digest)}` : ""}, ${plan.strategy}, ${to.instances} instances`);
  out(`      Swarm performs the rollout; never fewer than ${to.instances - (u.Order === "stop-first" ? u.Parallelism : 0)} running, at most ${u.Order === "start-first" ? to.instances + u.Parallelism : to.instances}`);
  out(updateLine("update_config", u));
  out(updateLine("rollback_config", plan.rollbackConfig));
  out("what Swarm cannot do that kiln promises, and what kiln does instead:");
  for (const l of plan.limits) out(`  - ${l.promise}\n      swarm:   ${l.swarm}\n      instead: ${l.instead}`);
  for (const n of plan.notes) out(`note: ${n}`);
}
