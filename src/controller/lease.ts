// Two controllers must never act on one service: each tick holds the lease (renewing it once half
// of it has run), and a controller that cannot (another one holds it) takes no step.

import type { StateDb } from "../state/db.js";

export interface LeaseDeps {
  db: StateDb;
  service: string;
  /** "pid@host"; without it the controller always acts (tests, simulation) */
  owner?: string;
  ttlMs: number;
  now: () => number;
  /** told once each time the lease is lost to another holder */
  onLost: (holder: string) => void;
}

export class Lease {
  private lost = false;
  constructor(private readonly d: LeaseDeps) {}

  /**
   * Renew (or take) the lease; false while another controller holds it. Renewing is a write the
   * store syncs to disk, and a controller holds several times a second; so while the lease is
   * ours with more than half its time left, reading it confirms it. A standby takes over only
   * once `until` has passed, so what is left of it is what this controller may still act on.
   */
  hold(): boolean {
    if (this.d.owner && !this.lost) {
      const cur = this.d.db.lease(this.d.service);
      if (cur?.owner === this.d.owner && cur.until - this.d.now() > this.d.ttlMs / 2) return true;
    }
    return this.take(undefined);
  }

  /** Take the lease; `takeFrom` names a holder known to be dead, whose lease need not run out first. */
  take(takeFrom: string | undefined): boolean {
    if (!this.d.owner) return true;
    const r = this.d.db.acquireLease(this.d.service, this.d.owner, this.d.now(), this.d.ttlMs, takeFrom);
    if (!r.ok && !this.lost) this.d.onLost(r.holder);
    this.lost = !r.ok;
    return r.ok;
  }

  holder(): string | undefined {
    return this.d.db.lease(this.d.service)?.owner;
  }

  release(): void {
    if (this.d.owner) this.d.db.releaseLease(this.d.service, this.d.owner);
  }
}
