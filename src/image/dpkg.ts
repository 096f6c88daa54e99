// Debian packages in a base: parsed from a dpkg status file (an imported
// Debian-based image carries /var/lib/dpkg/status), or, for the "node" base
// that copies host files, looked up on the host with `dpkg -S` (which package
// owns each copied library) and `dpkg-query` (its version and source).

import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  /** source package, when it differs from the binary package */
  source?: string;
  sourceVersion?: string;
}

/**
 * Installed packages from a dpkg status file, sorted by name. Only stanzas
 * whose Status is "install ok installed" count (removed packages leave
 * "deinstall ok config-files" stanzas behind). "Source: glibc (2.36-9)" gives
 * the source name and its own version.
 *
 * "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n"
 *   → [{ name: "libc6", version: "2.36-9+deb12u4", arch: "amd64", source: "glibc", sourceVersion: "2.36-9+deb12u4" }]
 */
export function parseDpkgStatus(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split("\n")) {
      const m = /^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$/.exec(line);
      if (m) fields.set(m[1]!.toLowerCase(), m[2]!.trim());
    }
    const name = fields.get("package");
    const version = fields.get("version");
    if (!name || !version || fields.get("status") !== "install ok installed") continue;
    const pkg: DebPackage = { name, version, arch: fields.get("architecture") ?? "" };
    const src = /^(\S+)(?:\s+\((\S+)\))?$/.exec(fields.get("source") ?? "");
    if (src) {
      pkg.source = src[1]!;
      pkg.sourceVersion = src[2] ?? version;
    }
    out.push(pkg);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.arch < b.arch ? -1 : 1));
}

/** `dpkg -S` output → package names ("libc6:amd64: /usr/lib/x86_64-linux-gnu/libc.so.6" → "libc6:amd64"). */
export function parseDpkgSearch(stdout: string): string[] {
  const names = new Set<string>();
  for (const line of stdout.split("\n")) {
    const m = /^(.+?): \//.exec(line.trim());
    if (!m || m[1]!.startsWith("diversion by")) continue;
    for (const n of m[1]!.split(", ")) names.add(n.trim());
  }
  return [...names].sort();
}

/**
 * On a merged-/usr system dpkg records some files under /lib and others under
 * /usr/lib (libc6's under /lib, libstdc++6's under /usr/lib), so a real path is
 * looked up under both names.
 *
 * "/usr/lib/x86_64-linux-gnu/libc.so.6" → [that, "/lib/x86_64-linux-gnu/libc.so.6"]
 * "/lib64/ld-linux-x86-64.so.2" → [that, "/usr/lib64/ld-linux-x86-64.so.2"]
 */
export function usrMergeAliases(path: string): string[] {
  for (const dir of ["lib", "lib64", "lib32", "libx32", "bin", "sbin"]) {
    if (path.startsWith(`/usr/${dir}/`)) return [path, path.slice("/usr".length)];
    if (path.startsWith(`/${dir}/`)) return [path, `/usr${path}`];
  }
  return [path];
}

const QUERY_FORMAT = "${Package}\\t${Architecture}\\t${Version}\\t${source:Package}\\t${source:Version}\\n";

/** `dpkg-query -W -f QUERY_FORMAT` output → packages. */
export function parseDpkgQuery(stdout: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const line of stdout.split("\n")) {
    const [name, arch, version, source, sourceVersion] = line.split("\t");
    if (!name || !version) continue;
    const pkg: DebPackage = { name, version, arch: arch ?? "" };
    if (source) {
      pkg.source = source;
      pkg.sourceVersion = sourceVersion || version;
    }
    out.push(pkg);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The host packages owning `paths` (absolute, real paths). A machine without
 * dpkg, or files no package owns (a hand-installed /usr/local/bin/node), give
 * fewer or no packages, never an error: this is a record, not a gate.
 */
export async function hostPackagesOwning(paths: readonly string[]): Promise<DebPackage[]> {
  if (paths.length === 0) return [];
  const candidates = [...new Set(paths.flatMap(usrMergeAliases))].sort();
  let search = "";
  try {
    search = (await execFileP("dpkg", ["-S", ...candidates], { timeout: 60_000 })).stdout;
  } catch (e) {
    // exit 1 when some path has no owner: the found ones are still on stdout
    search = (e as { stdout?: string }).stdout ?? "";
  }
  const names = parseDpkgSearch(search);
  if (names.length === 0) return [];
  try {
    return parseDpkgQuery((await execFileP("dpkg-query", ["-W", "-f", QUERY_FORMAT, ...names], { timeout: 60_000 })).stdout);
  } catch {
    return [];
  }
}
