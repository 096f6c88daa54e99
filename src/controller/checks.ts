// Blue-green pre-promotion checks: each path against each green instance, in the background;
// the loop reads the verdict on a later tick.

import type { RolloutRecord } from "../state/db.js";
import type { ProbeFn } from "./observe.js";
import type { ServiceState } from "./service-state.js";

export type CheckVerdict = { ok: true } | { ok: false; reason: string };

export class PromotionChecks {
  private readonly verdicts = new Map<number, CheckVerdict>();
  private readonly running = new Set<number>();

  constructor(private readonly state: ServiceState, private readonly probe: ProbeFn) {}

  verdict(rolloutId: number): CheckVerdict | undefined {
    return this.verdicts.get(rolloutId);
  }

  start(rollout: RolloutRecord, ids: string[]): void {
    if (this.running.has(rollout.id) || this.verdicts.has(rollout.id)) return;
    const spec = this.state.specOf(rollout.target);
    const checks = spec.strategy.blueGreen.prePromotionChecks ?? [];
    this.running.add(rollout.id);
    const runs: Promise<string | undefined>[] = [];
    for (const id of ids) {
      const addr = this.state.db.getInstance(id)?.address;
      for (const c of checks) {
        if (!addr) {
          runs.push(Promise.resolve(`${id} has no address`));
          continue;
        }
        runs.push(
          this.probe(addr, c.path, spec.health.timeout).then((o) => {
            const ok = c.status !== undefined ? o.status === c.status : o.ok;
            return ok ? undefined : `GET ${c.path} on ${id} answered ${o.status ?? o.reason ?? "nothing"}${c.status !== undefined ? ` (expected ${c.status})` : ""}`;
          }),
        );
      }
    }
    void Promise.all(runs)
      .then((results) => {
        const bad = results.filter((r): r is string => r !== undefined);
        this.verdicts.set(rollout.id, bad.length ? { ok: false, reason: bad.join("; ") } : { ok: true });
        this.state.eventOrLog(bad.length ? "error" : "info", bad.length ? `pre-promotion checks failed: ${bad.join("; ")}` : `pre-promotion checks passed (${runs.length})`, { rollout: rollout.id });
      })
      .finally(() => this.running.delete(rollout.id));
  }
}
