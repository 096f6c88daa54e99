// Pure decisions of the HAProxy router: which servers each backend should hold,
// with which HAProxy weight and admin state, and the runtime-API commands that
// move HAProxy's observed servers there. No I/O, no clock (time is an argument).

import type { RoutingTable, Target } from "../router.js";

/** The production backend and the preview backend in the generated config. */
export const PROD_BACKEND = "kiln";
export const PREVIEW_BACKEND = "kiln_preview";

/** HAProxy's largest server weight. */
export const MAX_WEIGHT = 256;

export type AdminWanted = "ready" | "drain";

export interface DesiredServer {
  /** the target id: HAProxy's server name */
  name: string;
  address: string;
  /** HAProxy weight, 0–256 */
  weight: number;
  admin: AdminWanted;
}

/** A server as read back from `show servers state` joined with `show stat`. */
export interface ObservedServer {
  name: string;
  address: string;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping */
  opState: number;
  /** srv_admin_state bitmask: 0x01 forced maint, 0x08 forced drain, … */
  admin: number;
  /** srv_uweight */
  weight: number;
  /** show stat scur */
  scur: number;
}

export const ADMIN_FMAINT = 0x01;
export const ADMIN_FDRAIN = 0x08;

/** Server names HAProxy accepts without quoting; kiln's instance ids fit. */
const NAME_RE = /^[A-Za-z0-9_.:-]{1,100}$/;

export function isServerName(id: string): boolean {
  return NAME_RE.test(id);
}

/**
 * Integer HAProxy weights (≤ 256) proportional to `shares`. When an exact
 * integer multiple fits under 256 the ratios are kept exactly; otherwise the
 * largest share becomes 256 and the others are rounded, never below 1 for a
 * positive share (a tiny canary still gets traffic).
 *
 *   [0.6, 0.3, 0.1]        → [6, 3, 1]
 *   [3, 1]                 → [3, 1]
 *   [1000, 1]              → [256, 1]
 *   [0.5, 0, 0.5]          → [1, 0, 1]
 *   [1/3, 2/3]             → [1, 2]
 *   [0.999, 0.001]         → [256, 1]   (0.999:0.001 has no integer form ≤ 256)
 */
export function integerWeights(shares: readonly number[]): number[] {
  const max = Math.max(0, ...shares);
  if (max <= 0) return shares.map(() => 0);
  const unit = shares.map((s) => s / max);
  for (let k = 1; k <= MAX_WEIGHT; k++) {
    const ws = unit.map((u) => u * k);
    if (ws.every((w) => Math.abs(w - Math.round(w)) < 1e-6)) return ws.map((w) => Math.round(w));
  }
  return unit.map((u) => (u <= 0 ? 0 : Math.max(1, Math.round(u * MAX_WEIGHT))));
}

const eligible = (t: Target, healthy: (id: string) => boolean) => t.state === "active" && t.weight > 0 && healthy(t.id);

/**
 * HAProxy weights for the production backend, so that HAProxy's one weighted
 * round robin reproduces RoutingTable.releaseWeights: a target of a pickable
 * release r gets share W(r)/ΣW × w(t)/Σw(r), where the sums run over eligible
 * targets (active, weight > 0, healthy as last observed) and pickable releases
 * (listed, weight > 0, with an eligible target). No pickable release, or no
 * releaseWeights: plain target weights. Draining targets are in drain with
 * weight 0; targets that get no share stay as servers with weight 0.
 *
 *   {stable 90, canary 10}; s1 w2, s2 w1 (stable), c1 (canary), x1 (other) → s1 60, s2 30, c1 10, x1 0
 *   {stable 90, canary 10}; canary's c1 unhealthy                          → s1 2, s2 1, c1 0
 *   {stable 100}; a canary release's targets at weight 1                   → canary 0
 *   {stable 1, canary 1}; stable 3 targets, canary 1                       → stable 1 each, canary 3
 *   {blue 100}; blue unhealthy, green healthy                              → green by its target weights
 *   {stable 0, canary 0}                                                   → plain target weights
 * An unhealthy target of a pickable release keeps a share computed as if it were
 * not there (weight 0), so HAProxy's own health checks and kiln's next reweigh
 * agree; kiln reweighs when observed health changes.
 */
export function planProduction(table: RoutingTable, healthy: (id: string) => boolean = () => true): DesiredServer[] {
  const targets = table.targets;
  let shares: number[];
  const rw = table.releaseWeights;
  const pickable = new Map<string, number>();
  if (rw) {
    for (const [release, w] of Object.entries(rw)) {
      if (w > 0 && targets.some((t) => t.release === release && eligible(t, healthy))) pickable.set(release, w);
    }
  }
  if (pickable.size === 0) {
    shares = targets.map((t) => (t.state === "active" && t.weight > 0 ? t.weight : 0));
  } else {
    const total = [...pickable.values()].reduce((a, b) => a + b, 0);
    const perRelease = new Map<string, number>();
    for (const t of targets) if (pickable.has(t.release) && eligible(t, healthy)) perRelease.set(t.release, (perRelease.get(t.release) ?? 0) + t.weight);
    shares = targets.map((t) => {
      if (!pickable.has(t.release) || !eligible(t, healthy)) return 0;
      return (pickable.get(t.release)! / total) * (t.weight / perRelease.get(t.release)!);
    });
  }
  const weights = integerWeights(shares);
  return targets.map((t, i) => ({
    name: t.id,
    address: t.address,
    weight: t.state === "draining" ? 0 : weights[i]!,
    admin: t.state === "draining" ? "drain" : "ready",
  }));
}

/**
 * The preview backend: the preview release's active targets, weight 1 each
 * (preview ignores production weight). No preview release → no servers (503).
 *
 *   preview green; g1 w0, g2 w0, g3 draining, b1 blue → g1 1, g2 1
 *   no preview                                         → []
 */
export function planPreview(table: RoutingTable): DesiredServer[] {
  if (table.preview === undefined) return [];
  return table.targets
    .filter((t) => t.release === table.preview && t.state === "active")
    .map((t) => ({ name: t.id, address: t.address, weight: 1, admin: "ready" as const }));
}

export interface ServerOptions {
  intervalMs: number;
  rise: number;
  fall: number;
}

/** One runtime-API step. `retire` servers are drained now and deleted later by the sweeper. */
export type Step =
  | { kind: "add"; backend: string; server: DesiredServer }
  | { kind: "addr"; backend: string; name: string; address: string }
  | { kind: "weight"; backend: string; name: string; weight: number }
  | { kind: "admin"; backend: string; name: string; admin: AdminWanted }
  | { kind: "retire"; backend: string; name: string };

const adminOf = (o: ObservedServer): AdminWanted | "maint" =>
  o.admin & ADMIN_FMAINT ? "maint" : o.admin & ADMIN_FDRAIN ? "drain" : "ready";

/**
 * Steps that take one backend from `observed` to `desired`. Idempotent: a
 * server already as wanted needs no step, so re-running after a crash is safe.
 * Order matters for no request lost: adds and re-activations first, weights
 * next, drains and retirements last, so there is always somewhere to go.
 *
 *   observed {}, desired a(ready, 3)                         → add a
 *   observed a(ready, 3), desired a(ready, 3)                → []
 *   observed a(ready, 3), desired a(drain, 0)                → weight a 0, admin a drain
 *   observed a(ready), b(ready); desired b                   → retire a
 *   observed a(maint, being removed), desired a(ready)       → weight a, admin a ready
 *   observed a at :1, desired a at :2                        → addr a :2
 */
export function planSteps(backend: string, observed: readonly ObservedServer[], desired: readonly DesiredServer[]): Step[] {
  const seen = new Map(observed.map((o) => [o.name, o]));
  const want = new Set(desired.map((d) => d.name));
  const first: Step[] = [];
  const weights: Step[] = [];
  const last: Step[] = [];
  for (const d of desired) {
    const o = seen.get(d.name);
    if (!o) {
      first.push({ kind: "add", backend, server: d });
      continue;
    }
    if (o.address !== d.address) first.push({ kind: "addr", backend, name: d.name, address: d.address });
    if (o.weight !== d.weight) weights.push({ kind: "weight", backend, name: d.name, weight: d.weight });
    if (adminOf(o) !== d.admin) (d.admin === "ready" ? first : last).push({ kind: "admin", backend, name: d.name, admin: d.admin });
  }
  for (const o of observed) if (!want.has(o.name)) last.push({ kind: "retire", backend, name: o.name });
  return [...first, ...weights, ...last];
}

/**
 * The runtime-API command lines of a step. A new server is added in
 * maintenance (HAProxy's rule), its checks enabled, then set to its state.
 * Dynamic servers inherit nothing from default-server, so pooling, checks and
 * timings are spelled out.
 *
 *   add kiln/a 127.0.0.1:9001 w3 ready → ["add server kiln/a 127.0.0.1:9001 weight 3 check inter 2000 rise 2 fall 2 pool-max-conn -1 pool-purge-delay 5s",
 *                                          "enable health kiln/a", "set server kiln/a state ready"]
 *   admin kiln/a drain                 → ["set server kiln/a state drain"]
 *   retire kiln/a                      → ["set server kiln/a weight 0", "set server kiln/a state drain"]
 */
export function commandsOf(step: Step, opts: ServerOptions): string[] {
  switch (step.kind) {
    case "add": {
      const s = step.server;
      const id = `${step.backend}/${s.name}`;
      return [
        `add server ${id} ${s.address} ${serverKeywords(s.weight, opts)}`,
        `enable health ${id}`,
        `set server ${id} state ${s.admin}`,
      ];
    }
    case "addr": {
      const [host, port] = splitAddress(step.address);
      return [`set server ${step.backend}/${step.name} addr ${host} port ${port}`];
    }
    case "weight":
      return [`set server ${step.backend}/${step.name} weight ${step.weight}`];
    case "admin":
      return [`set server ${step.backend}/${step.name} state ${step.admin}`];
    case "retire":
      return [`set server ${step.backend}/${step.name} weight 0`, `set server ${step.backend}/${step.name} state drain`];
  }
}

/**
 * The keywords of one server, the same on the runtime API and in the config
 * file (dynamic servers inherit nothing, so pooling and checks are explicit).
 *
 *   weight 3, inter 2000 rise 2 fall 2 → "weight 3 check inter 2000 rise 2 fall 2 pool-max-conn -1 pool-purge-delay 5s"
 */
export function serverKeywords(weight: number, opts: ServerOptions): string {
  return `weight ${weight} check inter ${opts.intervalMs} rise ${opts.rise} fall ${opts.fall} pool-max-conn -1 pool-purge-delay 5s`;
}

export function splitAddress(address: string): [string, string] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i), address.slice(i + 1)];
}

/**
 * Servers of one backend whose read-back differs from what was wanted; empty
 * means the table is applied. Servers being retired are not checked here.
 *
 *   desired a(ready 3), observed a(admin 0, weight 3)   → []
 *   desired a(drain 0), observed a(admin 0x08, weight 0) → []
 *   desired a(ready 3), observed a(admin 0x01)          → ["a: state maint, wanted ready"]
 *   desired a, nothing observed                          → ["a: missing"]
 */
export function mismatches(observed: readonly ObservedServer[], desired: readonly DesiredServer[]): string[] {
  const seen = new Map(observed.map((o) => [o.name, o]));
  const out: string[] = [];
  for (const d of desired) {
    const o = seen.get(d.name);
    if (!o) {
      out.push(`${d.name}: missing`);
      continue;
    }
    if (o.address !== d.address) out.push(`${d.name}: address ${o.address}, wanted ${d.address}`);
    if (o.weight !== d.weight) out.push(`${d.name}: weight ${o.weight}, wanted ${d.weight}`);
    if (adminOf(o) !== d.admin) out.push(`${d.name}: state ${adminOf(o)}, wanted ${d.admin}`);
  }
  return out;
}

/** A server being removed: drained, then maint, then deleted. */
export interface Retiring {
  backend: string;
  name: string;
  release: string;
  /** epoch ms after which its sessions are shut down */
  deadline: number;
  phase: "drain" | "maint";
  /** consecutive reads with no session and no connection */
  zeroReads: number;
}

/** Reads in a row with nothing attached before `del server` (HAProxy 2.6.12 lacks the fix for deleting a server streams still point at). */
export const ZERO_READS_BEFORE_DELETE = 3;

export type RetireAction = "wait" | "maint" | "maint-and-shutdown" | "delete";

/**
 * The next move for a retiring server from one read of its sessions.
 *
 *   drain, scur 2, before deadline          → wait (zeroReads 0)
 *   drain, scur 0 three reads in a row      → maint
 *   drain, scur 5, deadline passed          → maint-and-shutdown
 *   maint, idle 0, scur 0 three reads       → delete
 *   maint, scur 1                           → wait
 */
export function planRetire(r: Retiring, read: { scur: number; conns: number }, now: number): { action: RetireAction; zeroReads: number } {
  if (r.phase === "drain") {
    // Idle keep-alive connections stay attached while draining; only sessions count here.
    const zeroReads = read.scur === 0 ? r.zeroReads + 1 : 0;
    if (zeroReads >= ZERO_READS_BEFORE_DELETE) return { action: "maint", zeroReads: 0 };
    if (now >= r.deadline) return { action: "maint-and-shutdown", zeroReads: 0 };
    return { action: "wait", zeroReads };
  }
  const zeroReads = read.scur === 0 && read.conns === 0 ? r.zeroReads + 1 : 0;
  if (zeroReads >= ZERO_READS_BEFORE_DELETE) return { action: "delete", zeroReads };
  return { action: "wait", zeroReads };
}
