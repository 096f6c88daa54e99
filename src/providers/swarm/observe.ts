// What Swarm reports about a service, read as kiln release states. Pure: the driver
// gathers an Observation, these functions judge it.

export type SwarmUpdateState = "updating" | "completed" | "paused" | "rollback_started" | "rollback_completed" | "rollback_paused";

export interface SwarmTaskView {
  id: string;
  slot?: number;
  /** kiln release id from the task's container labels */
  release?: string;
  version?: string;
  digest?: string;
  /** Swarm task state: new, pending, assigned, accepted, preparing, starting, running, complete, shutdown, failed, rejected, orphaned, remove */
  state: string;
  desiredState: string;
  /** the engine's error for a failed or rejected task */
  error?: string;
  message?: string;
  containerId?: string;
  /** epoch ms of the last state change */
  at: number;
}

export interface SwarmObservation {
  /** release id in the service's current spec labels */
  specRelease?: string;
  replicas: number;
  update?: { state: SwarmUpdateState; message?: string; startedAt?: number; completedAt?: number };
  tasks: SwarmTaskView[];
}

export type SwarmVerdict =
  | { kind: "progressing"; running: number; starting: number }
  | { kind: "live" }
  | { kind: "rolling-back"; reason: string }
  | { kind: "rolled-back"; reason: string }
  | { kind: "paused"; reason: string }
  | { kind: "failed"; reason: string };

const FAILED = new Set(["failed", "rejected"]);

/** The latest engine error among a release's failed tasks, as "task ID: error". */
export function taskFailure(obs: SwarmObservation, release: string): string | undefined {
  const failed = obs.tasks.filter((t) => t.release === release && FAILED.has(t.state)).sort((a, b) => b.at - a.at)[0];
  return failed ? `task ${failed.id.slice(0, 12)}: ${failed.error ?? failed.message ?? failed.state}` : undefined;
}

/** Tasks that are meant to run and do (a task with a healthcheck reports running only once healthy). */
export function runningOf(obs: SwarmObservation, release: string): SwarmTaskView[] {
  return obs.tasks.filter((t) => t.release === release && t.desiredState === "running" && t.state === "running");
}

/**
 * Judge a deploy (or rollback) of `target` requested at `since` (epoch ms).
 *
 * - UpdateStatus older than the request is stale (it describes the previous update).
 * - updating → progressing; completed → live once every replica runs `target`.
 * - paused / rollback_paused → Swarm stopped the update and waits for a person: kiln calls
 *   the release failed, with the engine's Message as the reason.
 * - rollback_started / rollback_completed → rolling back / rolled back; the reason is the
 *   engine's Message, plus the failed task's error when there is one.
 * - no fresh UpdateStatus (a service just created): live when every replica runs `target`;
 *   failed once a slot's task has failed twice — Swarm restarts failed tasks, so one failure
 *   may be the engine's blip ("network sandbox does not exist"), a second is the release.
 *   Without this Swarm would restart a broken first release forever.
 *
 *   Example: 3 replicas, update requested at t=100, UpdateStatus {rollback_completed,
 *   "update rolled back due to failure or early termination of task abc"}, started t=101
 *   → rolled-back with that message and abc's error ("unhealthy container").
 */
export function judge(obs: SwarmObservation, target: string, since: number, opts: { created: boolean }): SwarmVerdict {
  const u = obs.update && (obs.update.startedAt === undefined || obs.update.startedAt >= since - 2000) ? obs.update : undefined;
  const running = runningOf(obs, target).length;
  const others = obs.tasks.filter((t) => t.release !== target && t.desiredState === "running" && t.state === "running").length;
  const starting = obs.tasks.filter((t) => t.release === target && t.desiredState === "running" && t.state !== "running" && !FAILED.has(t.state)).length;
  const converged = obs.specRelease === target && running >= obs.replicas && others === 0;
  const why = (msg?: string) => {
    const f = taskFailure(obs, target);
    return [msg?.trim(), f].filter(Boolean).join(" — ") || "no reason given by the engine";
  };
  if (u) {
    switch (u.state) {
      case "updating":
        return { kind: "progressing", running, starting };
      case "completed":
        return converged ? { kind: "live" } : { kind: "progressing", running, starting };
      case "paused":
        return { kind: "paused", reason: `Swarm paused the update: ${why(u.message)}` };
      case "rollback_started":
        return { kind: "rolling-back", reason: why(u.message) };
      case "rollback_completed":
        return { kind: "rolled-back", reason: why(u.message) };
      case "rollback_paused":
        return { kind: "failed", reason: `Swarm paused the rollback: ${why(u.message)}` };
    }
  }
  if (converged) return { kind: "live" };
  if (opts.created) {
    const perSlot = new Map<number, number>();
    for (const t of obs.tasks) if (t.release === target && FAILED.has(t.state)) perSlot.set(t.slot ?? 0, (perSlot.get(t.slot ?? 0) ?? 0) + 1);
    if ([...perSlot.values()].some((n) => n >= 2)) return { kind: "failed", reason: taskFailure(obs, target)! };
  }
  return { kind: "progressing", running, starting };
}

/** Tasks grouped by release, for status: how many run, how many are on their way. */
export function tasksByRelease(obs: SwarmObservation): { release: string; version?: string; digest?: string; running: number; starting: number; failed: number }[] {
  const by = new Map<string, { release: string; version?: string; digest?: string; running: number; starting: number; failed: number }>();
  for (const t of obs.tasks) {
    const key = t.release ?? "?";
    const g = by.get(key) ?? { release: key, version: t.version, digest: t.digest, running: 0, starting: 0, failed: 0 };
    if (t.desiredState === "running" && t.state === "running") g.running++;
    else if (t.desiredState === "running" && !FAILED.has(t.state)) g.starting++;
    if (FAILED.has(t.state)) g.failed++;
    by.set(key, g);
  }
  return [...by.values()].sort((a, b) => b.running - a.running || a.release.localeCompare(b.release));
}
