// Two controllers must never act on one service: each tick renews the lease, and a
// controller that cannot (another one holds it) takes no step.

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

  /** Renew (or take) the lease; false while another controller holds it. */
  hold(): boolean {
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
