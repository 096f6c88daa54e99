import { KilnError } from "../errors.js";
import { PATTERNS, PATTERN_TEXT } from "./schema-constants.js";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION_RE = new RegExp(PATTERNS.duration);

/** "30s" → 30000; a bare number means seconds (as in kiln.yaml). Result in whole ms. */
export function parseDuration(v: string | number): number {
  if (typeof v === "number") {
    if (!Number.isFinite(v) || v < 0) throw badDuration(v);
    return Math.round(v * 1000);
  }
  const s = v.trim();
  if (!DURATION_RE.test(s)) throw badDuration(v);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s)!;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
}

/**
 * The shortest string parseDuration reads back to the same value, e.g.
 * 30000 → "30s", 90000 → "1.5m", 1250 → "1250ms", 0 → "0s".
 * One decimal at most, so it stays readable.
 */
export function formatDuration(ms: number): string {
  const n = Math.max(0, Math.round(ms));
  if (n === 0) return "0s";
  for (const unit of ["h", "m", "s"] as const) {
    const size = UNIT_MS[unit];
    if (n >= size && n % (size / 10) === 0) return `${n / size}${unit}`;
  }
  return `${n}ms`;
}

function badDuration(v: unknown): KilnError {
  return new KilnError("KILN_E_USAGE", `invalid duration ${JSON.stringify(v)}`, {
    hint: `use ${PATTERN_TEXT[PATTERNS.duration]}`,
  });
}
