import type { Command } from "commander";
import { stdoutStyle } from "../output.js";
import { readFileSync } from "node:fs";
import { KilnError } from "../../errors.js";
import { assertProvider, auditImage, FINDING_DOCS, formatAuditText, parseSmoke, type SmokeRequest } from "../../audit/index.js";
import { openStore, resolveRef } from "../../image/index.js";
import { checkDeployPolicy } from "../../ops/deploy-flow.js";
import type { PolicyVerdict } from "../../image/index.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";

function policyLines(v: PolicyVerdict | undefined): string[] {
  if (!v) return ["policy    none (kiln.yaml sets no policy rule)"];
  return [`policy    ${v.ok ? "PASS" : "FAIL"}`, ...v.rules.map((r) => `  ${r.ok ? "ok  " : "FAIL"} ${r.rule.padEnd(17)} ${r.reason}`)];
}

export function register(program: Command): void {
  program
    .command("audit [image]")
    .description(
      "check an image is ready to be immutable: run it with a writable root, exercise it, restart it, and report writes outside declared volumes, root, SSH servers and secrets baked in",
    )
    .option("--provider <name>", "where to run it: local (overlay + bubblewrap, needs root) or docker", "local")
    .option("--smoke <file>", 'requests to send after the health check, one a line: "GET /", "POST /notes {\\"text\\":\\"hi\\"}"')
    .option("--health-deadline <ms>", "how long each start may take to become healthy", "20000")
    .option("--policy-only", "only judge the image against kiln.yaml's deploy policy (signature, SBOM, runtime, age); run nothing")
    .option("--json", "print the report as JSON (schema kiln.audit/v1)")
    .addHelpText(
      "after",
      [
        "",
        "IMAGE is a tag (name:version), a digest or a digest prefix; default: name:version from kiln.yaml.",
        "kiln.yaml gives the declared volumes, the environment and the health check. The instance is",
        "started, exercised (health check + --smoke requests), stopped with SIGTERM, started again on",
        "the same root and exercised again; nothing is kept afterwards.",
        "",
        "Findings:",
        ...Object.entries(FINDING_DOCS).map(([k, d]) => `  ${k.padEnd(22)} ${d.severity}: ${d.meaning}`),
        "",
        "The report ends with the verdict of kiln.yaml's `policy` (the rules kiln deploy enforces);",
        "a failing rule is blocking. --policy-only prints just that verdict.",
        "",
        "Exit status: 0 pass or warnings only, 1 a blocking (fail) finding or a failed policy rule, 2 bad input.",
        "",
        "Examples:",
        "  kiln audit                                   # the image kiln.yaml names, local sandbox",
        "  kiln audit hello:1.0.0 --smoke smoke.txt",
        "  kiln audit sha256:3f2a9c… --provider docker --json | jq '.findings[] | select(.severity == \"fail\")'",
        "  kiln -f examples/stateful/kiln.yaml audit stateful:1.0.0-root",
        "  kiln audit notes:1.0.0 --policy-only --json",
      ].join("\n"),
    )
    .action(async (image: string | undefined, opts: { provider: string; smoke?: string; healthDeadline: string; json?: boolean; policyOnly?: boolean }, cmd: Command) => {
      const provider = assertProvider(opts.provider);
      const deadline = Number(opts.healthDeadline);
      if (!Number.isInteger(deadline) || deadline < 100 || deadline > 600_000)
        throw new KilnError("KILN_E_USAGE", `--health-deadline must be whole milliseconds between 100 and 600000, got "${opts.healthDeadline}"`);
      let smoke: SmokeRequest[] = [];
      if (opts.smoke) {
        let text: string;
        try {
          text = readFileSync(opts.smoke, "utf8");
        } catch (e) {
          throw new KilnError("KILN_E_USAGE", `cannot read --smoke ${opts.smoke}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: "pass a readable file of requests" });
        }
        smoke = parseSmoke(text, opts.smoke);
      }
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const store = openStore(ctx.home);
      const ref = image ?? `${ctx.loaded.spec.name}:${ctx.loaded.spec.version}`;
      const digest = await resolveRef(store, ref);
      const policy = await checkDeployPolicy(store, digest, ctx.loaded.spec.policy);
      if (opts.policyOnly) {
        if (opts.json) printJson({ image: { ref, digest }, policy: policy ?? null });
        else for (const l of [`image     ${ref} ${digest}`, ...policyLines(policy)]) out(l);
        if (policy && !policy.ok) process.exitCode = 1;
        return;
      }
      const report = await auditImage({
        store,
        digest,
        ref,
        spec: ctx.loaded.spec,
        provider,
        smoke,
        healthDeadlineMs: deadline,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (opts.json) printJson({ ...report, policy: policy ?? null });
      else {
        process.stdout.write(formatAuditText(report, { color: stdoutStyle().colour }));
        for (const l of policyLines(policy)) out(l);
      }
      if (report.blocking || (policy && !policy.ok)) process.exitCode = 1;
    });
}
