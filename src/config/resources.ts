// kiln.yaml `resources:` — memory, pids and CPU limits per instance. Pure: quantities in,
// numbers out; the providers decide how each limit is enforced (src/providers/local/limits.ts).

/** What an instance may use; an absent field is not limited. */
export interface ResourceLimits {
  /** bytes */
  memoryBytes?: number;
  /** processes and threads together (the kernel counts both as tasks) */
  pids?: number;
  /** CPUs' worth of time per period, e.g. 0.5 = half of one CPU */
  cpu?: number;
}

/** The smallest memory limit worth running a process under; below it nothing starts. */
export const MIN_MEMORY_BYTES = 4 * 1024 * 1024;
/** 1 TiB: beyond it a value is a typo, not a plan. */
export const MAX_MEMORY_BYTES = 1024 ** 4;

const UNITS: Readonly<Record<string, number>> = { "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

export const MEMORY_PATTERN = "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|K|M|G|T)?$";

/**
 * A memory quantity as Kubernetes writes them → bytes (rounded down), or undefined when it is
 * not one. Binary suffixes are powers of 1024, decimal ones of 1000; a bare number is bytes.
 *
 *   "256Mi" → 268435456      "1.5Gi" → 1610612736     "64M" → 64000000
 *   "1048576" → 1048576      1048576 → 1048576        "256MB" → undefined (not a unit)
 */
export function parseMemory(v: string | number): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(v);
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2] ?? ""]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Bytes in the largest binary unit that divides them, for messages and status.
 *
 *   268435456 → "256Mi"   1610612736 → "1536Mi"   64000000 → "62500Ki"   1000 → "1000"   1024 ** 4 → "1Ti"
 */
export function formatMemory(bytes: number): string {
  for (const [unit, size] of [["Ti", 1024 ** 4], ["Gi", 1024 ** 3], ["Mi", 1024 ** 2], ["Ki", 1024]] as const)
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

/** "memory 256Mi, pids 64, cpu 0.5"; "none" when nothing is limited. */
export function describeLimits(l: ResourceLimits | undefined): string {
  const parts: string[] = [];
  if (l?.memoryBytes !== undefined) parts.push(`memory ${formatMemory(l.memoryBytes)}`);
  if (l?.pids !== undefined) parts.push(`pids ${l.pids}`);
  if (l?.cpu !== undefined) parts.push(`cpu ${l.cpu}`);
  return parts.length ? parts.join(", ") : "none";
}

/**
 * kiln.yaml's `resources` (already schema-checked) → limits; undefined when it limits nothing,
 * so a file without the key (or with `resources: {}`) behaves exactly as before it existed.
 *
 *   { memory: "256Mi", pids: 64, cpu: 0.5 } → { memoryBytes: 268435456, pids: 64, cpu: 0.5 }
 *   {} → undefined
 */
export function normalizeResources(r: { memory?: string | number; pids?: number; cpu?: number } | undefined): ResourceLimits | undefined {
  if (!r) return undefined;
  const out: ResourceLimits = {};
  if (r.memory !== undefined) {
    const b = parseMemory(r.memory);
    if (b !== undefined) out.memoryBytes = b;
  }
  if (r.pids !== undefined) out.pids = r.pids;
  if (r.cpu !== undefined) out.cpu = r.cpu;
  return Object.keys(out).length ? out : undefined;
}
