// Where `kiln outdated` learns which Debian package versions are available:
// a package index in Debian's `Packages` format (a mirror's
// dists/SUITE/main/binary-amd64/Packages, uncompressed), or the output of
// `apt-cache policy PKG…` (its Candidate lines). Both are parsed here, purely;
// running apt-cache is ops/outdated.ts's business (argv built by
// aptCachePolicyArgv).

import { compareDebianVersions } from "./versions.js";

/** package name → the newest available version per architecture ("" when the source does not say). */
export type PackageIndex = Map<string, Map<string, string>>;

function add(index: PackageIndex, name: string, arch: string, version: string): void {
  const byArch = index.get(name) ?? new Map<string, string>();
  const have = byArch.get(arch);
  if (have === undefined || compareDebianVersions(version, have) > 0) byArch.set(arch, version);
  index.set(name, byArch);
}

/**
 * A `Packages` file or `apt-cache policy` output → the newest version of each
 * package. Packages stanzas give Package, Version, Architecture (several
 * versions of one package: the newest wins); apt-cache policy gives
 * "NAME:" / "NAME:ARCH:" then "  Candidate: VERSION" ("(none)" is skipped).
 *
 * "Package: libssl3\nVersion: 3.0.17-1~deb12u3\nArchitecture: amd64\n" → libssl3 → { amd64: 3.0.17-1~deb12u3 }
 * "libssl3:\n  Installed: 3.0.11-1~deb12u2\n  Candidate: 3.0.17-1~deb12u3\n" → libssl3 → { "": 3.0.17-1~deb12u3 }
 * "libc6:amd64:\n  Installed: (none)\n  Candidate: 2.36-9+deb12u13\n" → libc6 → { amd64: 2.36-9+deb12u13 }
 */
export function parsePackageIndex(text: string): PackageIndex {
  const index: PackageIndex = new Map();
  if (/^\s+Candidate:/m.test(text)) {
    let current: { name: string; arch: string } | undefined;
    for (const line of text.split("\n")) {
      const head = /^([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?:\s*$/.exec(line);
      if (head) {
        current = { name: head[1]!, arch: head[2] ?? "" };
        continue;
      }
      const cand = /^\s+Candidate:\s*(\S+)/.exec(line);
      if (cand && current && cand[1] !== "(none)") add(index, current.name, current.arch, cand[1]!);
    }
    return index;
  }
  for (const stanza of text.split(/\n\s*\n/)) {
    let name: string | undefined;
    let version: string | undefined;
    let arch = "";
    for (const line of stanza.split("\n")) {
      const m = /^(Package|Version|Architecture):\s*(\S+)\s*$/.exec(line);
      if (!m) continue;
      if (m[1] === "Package") name = m[2];
      else if (m[1] === "Version") version = m[2];
      else arch = m[2]!;
    }
    if (name && version) add(index, name, arch, version);
  }
  return index;
}

/**
 * The newest version the index has for an installed package: its own
 * architecture's, else an "all" one, else one with no architecture recorded.
 */
export function availableVersion(index: PackageIndex, name: string, arch: string): string | undefined {
  const byArch = index.get(name);
  if (!byArch) return undefined;
  return byArch.get(arch) ?? byArch.get("all") ?? byArch.get("");
}

/** `apt-cache policy` for these packages, as data (run by the caller, never through a shell). */
export function aptCachePolicyArgv(names: readonly string[]): string[] {
  return ["apt-cache", "policy", ...[...new Set(names)].sort()];
}
