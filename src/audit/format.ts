// The audit report for people. Pure: report in, text out.

import type { AuditReport } from "./audit.js";
import type { Finding, FindingKind } from "./types.js";

/** One line per finding kind: what it means. Shown by `kiln audit --help` and in the README. */
export const FINDING_DOCS: Record<FindingKind, { severity: string; meaning: string }> = {
  "write-outside-volumes": { severity: "fail", meaning: "the app created, modified or deleted a path outside kiln.yaml `volumes` and /tmp: that state is lost (or differs per instance) when instances are replaced" },
  "runs-as-root": { severity: "fail", meaning: 'the image config user is empty, "0" or "root" (or a name that is uid 0 in the image\'s /etc/passwd)' },
  "ssh-daemon": { severity: "fail", meaning: "the image ships an SSH server (sshd, dropbear, tinysshd), one ran, the instance listened on port 22, or the config exposes 22" },
  "secret-file": { severity: "fail for private keys, else warn", meaning: "a private key (by content), a .env with KEY/TOKEN/SECRET/PASSWORD values, AWS credentials, an .npmrc auth token, .git-credentials, .pgpass, .netrc or .docker/config.json auth in the image; the secret is never printed" },
  "secret-env": { severity: "warn", meaning: "the image config bakes an environment variable whose name looks like a secret" },
  "state-across-restart": { severity: "warn", meaning: "a file written outside volumes before the restart was read after it: the app needs local state a replacement would not have" },
  unhealthy: { severity: "fail", meaning: "the instance never answered its health check (after the first start, or after the restart); the audit is incomplete" },
  "smoke-failed": { severity: "warn", meaning: "a --smoke request got no 2xx/3xx answer, so what it would have written was not exercised" },
};

function findingLine(f: Finding): string {
  return `  ${f.severity === "fail" ? "FAIL" : "warn"}  ${f.kind.padEnd(22)} ${f.message}`;
}

export function formatAuditText(r: AuditReport, opts: { color?: boolean } = {}): string {
  const c = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines: string[] = [];
  lines.push(`image     ${r.image.ref} ${r.image.digest}`);
  lines.push(`provider  ${r.provider}, volumes ${r.observed.volumes.length > 0 ? r.observed.volumes.join(", ") : "(none declared)"}`);
  for (const run of r.runs) {
    const smoke = run.smoke.length > 0 ? `, smoke ${run.smoke.filter((s) => s.ok).length}/${run.smoke.length} ok` : "";
    const stop = run.stop ? `, stopped in ${run.stop.ms} ms${run.stop.killed ? " (killed after the grace period)" : ""}` : "";
    lines.push(`${run.phase.padEnd(14)}${run.healthy ? `healthy after ${run.healthyAfterMs} ms` : `NOT healthy: ${run.healthError ?? ""}`}${smoke}${stop}`);
  }
  lines.push(
    `observed  ${r.observed.changedPaths} changed path${r.observed.changedPaths === 1 ? "" : "s"}, ${r.observed.imageFiles} image files scanned, processes ${r.observed.processes.join(", ") || "-"}, listening ${r.observed.listeningPorts.join(", ") || "-"}` +
      (r.observed.readAfterRestartChecked ? "" : " (read-after-restart not checked)"),
  );
  lines.push("");
  if (r.findings.length === 0) lines.push("no findings");
  const hints = new Map<string, string>();
  for (const f of r.findings) {
    const line = findingLine(f);
    lines.push(f.severity === "fail" ? c("31", line) : c("33", line));
    if (!hints.has(f.kind)) hints.set(f.kind, f.hint);
  }
  if (hints.size > 0) {
    lines.push("");
    for (const [kind, hint] of hints) lines.push(`  hint (${kind}): ${hint}`);
  }
  if (r.logTail) {
    lines.push("", "instance log (last lines):", ...r.logTail.trimEnd().split("\n").slice(-15).map((l) => `  | ${l}`));
  }
  lines.push("");
  const verdict = r.verdict === "fail" ? c("31", "FAIL") : r.verdict === "warn" ? c("33", "WARN") : c("32", "PASS");
  lines.push(`verdict   ${verdict}: ${r.counts.fail} blocking, ${r.counts.warn} warning${r.counts.warn === 1 ? "" : "s"} (${(r.durationMs / 1000).toFixed(1)} s)`);
  return lines.join("\n") + "\n";
}
