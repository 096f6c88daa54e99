// The end-of-life gate of a bake: which Node runtime the base carries (a node
// base knows it; an imported image baked by kiln says it in its
// dev.kiln.runtime.* labels) and what to say, or refuse, when its release line
// is past or near its end of life (dates in node-releases.ts).

import { KilnError } from "../errors.js";
import type { BaseImage } from "./base-image.js";
import { nodeSupport, pinnedLines, type RuntimeSupport } from "./node-releases.js";
import { RUNTIME_LABEL } from "./runtime.js";

export interface BaseRuntime {
  name: string;
  version: string;
  source: string;
  origin?: string;
  support: RuntimeSupport;
}

export function runtimeOfBase(base: Pick<BaseImage, "runtime" | "config">, today: string): BaseRuntime | undefined {
  if (base.runtime) {
    const r = base.runtime;
    return { name: r.name, version: r.version, source: r.source, origin: r.origin, support: nodeSupport(r.version, today) };
  }
  const labels = base.config.config?.Labels ?? {};
  const version = labels[RUNTIME_LABEL.version];
  if (labels[RUNTIME_LABEL.name] !== "node" || !version) return undefined;
  const out: BaseRuntime = { name: "node", version, source: labels[RUNTIME_LABEL.source] ?? "unknown", support: nodeSupport(version, today) };
  if (labels[RUNTIME_LABEL.origin]) out.origin = labels[RUNTIME_LABEL.origin];
  return out;
}

/**
 * Warnings for a runtime past or near its end of life; with `strict`, one
 * past it is refused (KILN_E_SPEC: the base kiln.yaml names is the fix).
 *
 * - node 20.20.2 on 2026-12-02 → "node 20.20.2 … reached its end of life on 2026-04-30 …" (strict: throws)
 * - node 22.23.5 on 2027-03-01 → "… reaches its end of life on 2027-04-30 (in 60 days) …"
 * - node 24.22.3 on 2026-12-02 → no warning
 */
export function checkRuntimeSupport(runtime: BaseRuntime | undefined, strict: boolean, base: string): string[] {
  if (!runtime) return [];
  const s = runtime.support;
  const suggestion = `use a supported line, e.g. image.base: node@24 (pinned lines: ${pinnedLines()})`;
  if (s.status === "end-of-life") {
    const msg = `the base runtime node ${runtime.version} (${base}) reached its end of life on ${s.endOfLife}: it gets no security fixes`;
    if (strict) throw new KilnError("KILN_E_SPEC", `${msg}; refused (--strict)`, { hint: suggestion, details: [{ where: "image.base", path: "image.base", message: base }] });
    return [`${msg}; ${suggestion}`];
  }
  if (s.status === "ending-soon") return [`the base runtime node ${runtime.version} (${base}) reaches its end of life on ${s.endOfLife} (in ${s.daysLeft} days); ${suggestion}`];
  return [];
}
