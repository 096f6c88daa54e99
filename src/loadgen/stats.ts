// Running totals of a load run. Pure bookkeeping: no clock, no I/O; the
// caller passes times in.

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface Totals {
  /** ms since the run started */
  t: number;
  /** completed requests, failed ones included */
  requests: number;
  /** network error, timeout, or a status outside 2xx */
  failed: number;
  /** by HTTP status; "error" counts requests that got no response */
  byStatus: Record<string, number>;
  /** by the `version` field of a JSON response body, when there is one */
  byVersion: Record<string, number>;
  /** highest `counter` seen in a JSON response body; null until one is seen */
  maxCounter: number | null;
  /** a response carried a counter lower than one already returned before its request was sent */
  counterWentBackwards: boolean;
  /** over completed requests, ms; zeros until the first */
  latencyMs: LatencySummary;
}

export interface FinalTotals extends Totals {
  done: true;
  /** why the run ended */
  reason: "duration" | "max-requests" | "signal" | "stdin" | "stdin-closed";
  /** the first 20 failures, described */
  errors: string[];
}

export const MAX_ERRORS = 20;

// Latency histogram with ~5% wide buckets: percentiles cost O(buckets), not O(requests).
const GROWTH = 1.05;
const MIN_MS = 0.05;
const bucketOf = (ms: number) => (ms <= MIN_MS ? 0 : Math.floor(Math.log(ms / MIN_MS) / Math.log(GROWTH)) + 1);
const upperOf = (b: number) => (b === 0 ? MIN_MS : MIN_MS * GROWTH ** b);

export type Outcome =
  | { kind: "response"; status: number; version?: string; counter?: number; detail?: string }
  | { kind: "error"; message: string };

export class LoadStats {
  private requests = 0;
  private failed = 0;
  private readonly byStatus: Record<string, number> = {};
  private readonly byVersion: Record<string, number> = {};
  private maxCounter: number | null = null;
  private wentBackwards = false;
  private readonly errors: string[] = [];
  private readonly buckets = new Map<number, number>();
  private maxLatency = 0;

  /** The floor a new request's counter must not fall below: call when the request is sent. */
  counterFloor(): number | null {
    return this.maxCounter;
  }

  record(o: Outcome, latencyMs: number, floor: number | null, t: number): void {
    this.requests += 1;
    const b = bucketOf(latencyMs);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
    if (latencyMs > this.maxLatency) this.maxLatency = latencyMs;

    if (o.kind === "error") {
      this.failed += 1;
      this.byStatus.error = (this.byStatus.error ?? 0) + 1;
      this.note(`t=${t}ms ${o.message}`);
      return;
    }
    const key = String(o.status);
    this.byStatus[key] = (this.byStatus[key] ?? 0) + 1;
    if (o.status < 200 || o.status > 299) {
      this.failed += 1;
      this.note(`t=${t}ms HTTP ${o.status}${o.detail ? `: ${o.detail}` : ""}`);
    }
    if (o.version !== undefined) this.byVersion[o.version] = (this.byVersion[o.version] ?? 0) + 1;
    if (o.counter !== undefined) {
      // Linearizability check: this request was sent after every response that
      // set `floor` had arrived, so a correct shared counter cannot be lower.
      if (floor !== null && o.counter < floor) {
        this.wentBackwards = true;
        this.note(`t=${t}ms counter went backwards: ${o.counter} after ${floor} had been returned`);
      }
      if (this.maxCounter === null || o.counter > this.maxCounter) this.maxCounter = o.counter;
    }
  }

  totals(t: number): Totals {
    return {
      t,
      requests: this.requests,
      failed: this.failed,
      byStatus: { ...this.byStatus },
      byVersion: { ...this.byVersion },
      maxCounter: this.maxCounter,
      counterWentBackwards: this.wentBackwards,
      latencyMs: this.latency(),
    };
  }

  firstErrors(): string[] {
    return [...this.errors];
  }

  private note(message: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push(message);
  }

  private latency(): LatencySummary {
    const n = this.requests;
    if (n === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
    const sorted = [...this.buckets.entries()].sort((a, b) => a[0] - b[0]);
    const at = (q: number) => {
      const rank = Math.ceil(q * n);
      let seen = 0;
      for (const [b, c] of sorted) {
        seen += c;
        if (seen >= rank) return Math.min(round(upperOf(b)), round(this.maxLatency));
      }
      return round(this.maxLatency);
    };
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(this.maxLatency) };
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Reads `version` and `counter` from a hello-style JSON body; anything else is ignored. */
export function readHelloBody(body: string): { version?: string; counter?: number } {
  const s = body.trimStart();
  if (!s.startsWith("{")) return {};
  try {
    const o = JSON.parse(s) as Record<string, unknown>;
    const out: { version?: string; counter?: number } = {};
    if (typeof o.version === "string") out.version = o.version;
    if (typeof o.counter === "number" && Number.isFinite(o.counter)) out.counter = o.counter;
    return out;
  } catch {
    return {};
  }
}
