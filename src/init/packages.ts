// `kiln init --packages FILE`: a list of Debian packages → the same list pinned
// to exact versions, resolved on this machine (the installed version first,
// the version apt would install otherwise). Unresolvable names are an error:
// an unpinned package would make two bakes of the same kiln.yaml differ.

import { spawnSync } from "node:child_process";
import { KilnError } from "../errors.js";
import { isPackageName, isPackageVersion, type PinnedPackage } from "../generate/index.js";

/** A command as data (STYLE 9): the runner is the only thing that executes it. */
export interface CommandEntry {
  argv: string[];
}

export interface CommandResult {
  status: number | null;
  stdout: string;
}

export type Runner = (cmd: CommandEntry) => CommandResult;

export const systemRunner: Runner = ({ argv }) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 30_000, env: { ...process.env, LC_ALL: "C" } });
  return { status: r.error ? null : r.status, stdout: r.stdout ?? "" };
};

export function installedVersionCommand(name: string): CommandEntry {
  return { argv: ["dpkg-query", "-W", "-f=${Status}\\t${Version}", name] };
}

export function candidateVersionCommand(name: string): CommandEntry {
  return { argv: ["apt-cache", "policy", name] };
}

/** dpkg-query's "install ok installed\t1.2-3" → "1.2-3"; anything not installed → undefined. */
export function parseInstalled(stdout: string): string | undefined {
  const [status, version] = stdout.split("\t");
  return status?.trim() === "install ok installed" && version && isPackageVersion(version.trim()) ? version.trim() : undefined;
}

/** apt-cache policy's "  Candidate: 1.2-3" → "1.2-3"; "(none)" or no line → undefined. */
export function parseCandidate(stdout: string): string | undefined {
  const m = /^\s*Candidate:\s*(\S+)\s*$/m.exec(stdout);
  return m && m[1] !== "(none)" && isPackageVersion(m[1]!) ? m[1] : undefined;
}

export interface PackageLine {
  name: string;
  /** pinned in the file already */
  version?: string;
  line: number;
}

/** One package a line ("curl", "curl=7.88.1-10+deb12u8"); "#" starts a comment; blank lines are skipped. */
export function parsePackageList(text: string, file: string): PackageLine[] {
  const out: PackageLine[] = [];
  const problems: { where: string; message: string; hint?: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    for (const item of line.split(/\s+/)) {
      const eq = item.indexOf("=");
      const name = eq < 0 ? item : item.slice(0, eq);
      const version = eq < 0 ? undefined : item.slice(eq + 1);
      if (!isPackageName(name)) problems.push({ where: `${file}:${i + 1}`, message: `"${name}" is not a Debian package name` });
      else if (version !== undefined && !isPackageVersion(version)) problems.push({ where: `${file}:${i + 1}`, message: `"${version}" is not a Debian version` });
      else out.push({ name, version, line: i + 1 });
    }
  });
  if (problems.length) {
    throw new KilnError("KILN_E_USAGE", `${file}: ${problems.length} invalid ${problems.length === 1 ? "entry" : "entries"}`, {
      details: problems,
      hint: 'one package a line, "NAME" or "NAME=VERSION"; "#" starts a comment',
    });
  }
  return out;
}

/** Pin every package, or throw one error naming all that could not be resolved. */
export function resolvePackages(lines: readonly PackageLine[], file: string, run: Runner = systemRunner): PinnedPackage[] {
  const pinned = new Map<string, string>();
  const missing: PackageLine[] = [];
  for (const p of lines) {
    const version = p.version ?? parseInstalled(run(installedVersionCommand(p.name)).stdout) ?? parseCandidate(run(candidateVersionCommand(p.name)).stdout);
    if (version === undefined) missing.push(p);
    else pinned.set(p.name, version);
  }
  if (missing.length) {
    throw new KilnError("KILN_E_USAGE", `cannot pin ${missing.length} package${missing.length === 1 ? "" : "s"}: neither dpkg-query nor apt-cache policy knows ${missing.length === 1 ? "it" : "them"}`, {
      details: missing.map((p) => ({ where: `${file}:${p.line}`, message: p.name })),
      hint: "check the names, run `apt-get update` (apt-cache needs package lists), or write NAME=VERSION in the file",
    });
  }
  return [...pinned].map(([name, version]) => ({ name, version }));
}
