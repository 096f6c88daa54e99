import type { Command } from "commander";
import { stdoutStyle } from "../output.js";
import { readFileSync } from "node:fs";
import { KilnError } from "../../errors.js";
import { describeProblems, failsAt, formatJson, formatText, reviewFiles, RULES, toSarif } from "../../review/index.js";

const FORMATS = ["text", "json", "sarif"] as const;
type Format = (typeof FORMATS)[number];

function toolVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

export function register(program: Command): void {
  program
    .command("review [paths...]")
    .description(
      "review deploy scripts, Packer templates, CloudFormation, Terraform, Kubernetes/Argo Rollouts manifests, Compose/Swarm stacks and kiln.yaml for breaks of immutable infrastructure (terminating the old fleet before the new one is healthy, mutable images, SSH, state on local disk, secrets); changes nothing",
    )
    .option("--format <format>", `output format: ${FORMATS.join(", ")}`, "text")
    .option("--json", "same as --format json")
    .option("--fail-on <severity>", "exit 1 when a finding at or above this severity exists: warning or error", "error")
    .option("--list-rules", "print the rules (id, severity, title) and exit")
    .option("--explain", "under each deploy-path finding, print the control-flow path the analysis followed to it")
    .addHelpText(
      "after",
      [
        "",
        "Directories are walked; each file's kind is told by its extension and content.",
        "Suppress a finding with a reason, on its line or the line above:",
        "  # kiln-ignore KR012: single-instance staging fleet, downtime accepted",
        "",
        "Exit status: 0 no finding at or above --fail-on, 1 findings, 2 unreadable or unparsable input.",
        "",
        "Examples:",
        "  kiln review deploy/ packer/ infra/",
        "  kiln review scripts/blue-green.sh --fail-on warning",
        "  kiln review . --format sarif > kiln-review.sarif   # upload to code scanning",
        "  kiln review --list-rules",
      ].join("\n"),
    )
    .action(async (paths: string[], opts: { format: string; json?: boolean; failOn: string; listRules?: boolean; explain?: boolean }) => {
      const format = (opts.json ? "json" : opts.format) as Format;
      if (!FORMATS.includes(format)) {
        throw new KilnError("KILN_E_USAGE", `unknown --format "${opts.format}"`, { hint: `use one of: ${FORMATS.join(", ")}` });
      }
      if (opts.failOn !== "warning" && opts.failOn !== "error") {
        throw new KilnError("KILN_E_USAGE", `unknown --fail-on "${opts.failOn}"`, { hint: "use warning or error" });
      }
      if (opts.listRules) {
        if (format === "json") process.stdout.write(`${JSON.stringify(RULES, null, 2)}\n`);
        else for (const r of RULES) process.stdout.write(`${r.id}  ${r.severity.padEnd(7)}  ${r.title}\n`);
        return;
      }
      const result = await reviewFiles(paths.length > 0 ? paths : ["."]);
      if (result.problems.length > 0) {
        const { message, hint } = describeProblems(result.problems, process.cwd());
        throw new KilnError("KILN_E_USAGE", message, { details: result.problems.map((p) => ({ where: p.where, message: p.message })), hint });
      }
      if (format === "json") process.stdout.write(formatJson(result));
      else if (format === "sarif") process.stdout.write(`${JSON.stringify(toSarif(result, toolVersion()), null, 2)}\n`);
      else process.stdout.write(formatText(result, { color: stdoutStyle().colour, explain: !!opts.explain }));
      if (failsAt(result, opts.failOn)) process.exitCode = 1;
    });
}
