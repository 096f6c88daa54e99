// Comparing versions, for `kiln outdated`: Debian package versions (dpkg's
// rules) and npm/Node.js versions (semver's precedence). Pure. Hand-written
// because neither rule set is a direct dependency of kiln (semver is only in
// node_modules through other packages) and each is a few lines with a
// published specification: deb-version(7) and semver.org §11.

/** dpkg's order of one character in a non-digit run: "~" before everything (even the end), letters before non-letters. */
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp over one part (upstream version or revision). */
function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ac = i < a.length && !/\d/.test(a[i]!) ? order(a[i]) : 0;
      const bc = j < b.length && !/\d/.test(b[j]!) ? order(b[j]) : 0;
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    while (i < a.length && /\d/.test(a[i]!) && j < b.length && /\d/.test(b[j]!)) {
      if (!first) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /\d/.test(a[i]!)) return 1;
    if (j < b.length && /\d/.test(b[j]!)) return -1;
    if (first) return first;
  }
  return 0;
}

function splitDebian(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(":");
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf("-");
  return dash === -1 ? { epoch, upstream: rest, revision: "" } : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

/**
 * Debian version order (as `dpkg --compare-versions`): negative, 0 or positive.
 *
 * - ("2.36-9+deb12u4", "2.36-9+deb12u13") → negative (13 > 4 as numbers)
 * - ("1.0~rc1-1", "1.0-1") → negative ("~" sorts before the end)
 * - ("1:1.2.13", "1.3") → positive (the epoch wins)
 * - ("3.0.11-1~deb12u2+b1", "3.0.11-1~deb12u2") → positive
 * - ("1.0-1", "1.0-1") → 0; ("1.0a", "1.0+") → negative (letters before other characters)
 */
export function compareDebianVersions(a: string, b: string): number {
  const x = splitDebian(a);
  const y = splitDebian(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return comparePart(x.upstream, y.upstream) || comparePart(x.revision, y.revision);
}

interface Semver {
  core: [number, number, number];
  pre: string[];
}

/** "v24.22.3" / "1.2.3-rc.1+build" → parts; anything else → undefined. */
export function parseSemver(v: string): Semver | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(v.trim());
  if (!m) return undefined;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split(".") : [] };
}

/**
 * semver precedence: negative, 0 or positive; a version that is not semver
 * sorts before every one that is (and two such compare as strings).
 *
 * - ("24.22.3", "24.23.0") → negative; ("1.0.0-rc.1", "1.0.0") → negative (a pre-release comes first)
 * - ("1.0.0-alpha.2", "1.0.0-alpha.10") → negative (numeric identifiers compare as numbers)
 * - ("v20.20.2", "20.20.2") → 0; ("1.0.0+a", "1.0.0+b") → 0 (build metadata is ignored)
 */
export function compareSemver(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x || !y) return x ? 1 : y ? -1 : a < b ? -1 : a > b ? 1 : 0;
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i]! - y.core[i]!;
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn && Number(p) !== Number(q)) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/**
 * The next patch version of kiln.yaml's `version`, skipping versions already
 * taken (tags never move, so a taken one cannot be baked again).
 *
 * - ("1.0.0", []) → "1.0.1"; ("2.3.9", []) → "2.3.10"; ("v1.4.2", []) → "v1.4.3"
 * - ("1.0.0", ["1.0.1", "1.0.2"]) → "1.0.3"
 * - ("1.0.0-rc.1", []) or ("1.0", []) → undefined (not MAJOR.MINOR.PATCH: the caller says so)
 */
export function nextPatchVersion(version: string, taken: readonly string[]): string | undefined {
  const m = /^(v?)(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m) return undefined;
  const have = new Set(taken);
  for (let patch = Number(m[4]) + 1; patch < Number(m[4]) + 10_000; patch++) {
    const next = `${m[1]}${m[2]}.${m[3]}.${patch}`;
    if (!have.has(next)) return next;
  }
  return undefined;
}
