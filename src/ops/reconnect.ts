// Following the controller across its restarts: a watcher (kiln deploy, rollout watch,
// status --watch, logs -f) keeps reading while the controller is down for a moment (a crash,
// the supervisor restarting it, a kill test), because the rollout lives on in the
// controller's state and the restarted controller resumes it.

import { isUnreachable } from "../server/client.js";

export interface ReconnectPolicy {
  /** first wait, ms */
  initialMs: number;
  /** no single wait is longer, ms */
  maxMs: number;
  /** the controller may stay unreachable this long in one outage before the watcher gives up, ms */
  budgetMs: number;
}

/** Far more than a supervised restart takes (its backoff tops out at 2 s, start-up a few seconds on a busy machine). */
export const DEFAULT_RECONNECT: ReconnectPolicy = { initialMs: 100, maxMs: 2000, budgetMs: 90_000 };

/**
 * The wait before reconnect attempt `attempt` (0-based) of one outage, or undefined when the
 * outage has already lasted `elapsedMs` and the next wait would cross the budget. Doubling
 * from initialMs, capped at maxMs; the last wait is shortened to end on the budget.
 *
 *   attempt 0, elapsed 0      → 100        attempt 3, elapsed 700     → 800
 *   attempt 6, elapsed 6300   → 2000       attempt 9, elapsed 89_000  → 1000 (ends on the budget)
 *   attempt 9, elapsed 90_000 → undefined (give up)
 */
export function computeBackoff(p: ReconnectPolicy, attempt: number, elapsedMs: number): number | undefined {
  const left = p.budgetMs - elapsedMs;
  if (left <= 0) return undefined;
  return Math.min(p.initialMs * 2 ** Math.min(attempt, 30), p.maxMs, left);
}

export interface ReconnectDeps {
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** told once per outage, when the first read fails, and once when a read succeeds again */
  onLost?: (e: unknown) => void;
  onBack?: (downMs: number) => void;
}

/**
 * Wrap reads (never a change: a POST that the controller may or may not have applied before it
 * died is not repeated) so that an unreachable controller is waited for, within the budget.
 * Any other error (the controller answered and refused) is thrown at once.
 */
export function reconnecting(policy: ReconnectPolicy = DEFAULT_RECONNECT, deps: ReconnectDeps = {}): <T>(read: () => Promise<T>) => Promise<T> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  return async <T>(read: () => Promise<T>): Promise<T> => {
    let lostAt: number | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        const v = await read();
        if (lostAt !== undefined) deps.onBack?.(now() - lostAt);
        return v;
      } catch (e) {
        if (!isUnreachable(e)) throw e;
        if (lostAt === undefined) {
          lostAt = now();
          deps.onLost?.(e);
        }
        const wait = computeBackoff(policy, attempt, now() - lostAt);
        if (wait === undefined) throw e;
        await sleep(wait);
      }
    }
  };
}

/** The read wrapper a watcher uses: waits out restarts and says so through onConnection. */
export function readsThroughRestarts(opts: { reconnect?: ReconnectPolicy; onConnection?: (line: string) => void }): <T>(read: () => Promise<T>) => Promise<T> {
  return reconnecting(opts.reconnect ?? DEFAULT_RECONNECT, {
    onLost: () => opts.onConnection?.("controller unreachable (restarting?): waiting for it to come back"),
    onBack: (ms) => opts.onConnection?.(`controller back after ${(ms / 1000).toFixed(1)} s: following on`),
  });
}
