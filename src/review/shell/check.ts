// The shell checker: parse, follow the control flow (flow.ts), and, by the script's role,
// the bake rules (a Packer provisioner script) or the configuration-after-deploy rule
// (user data).

import { basename } from "node:path";
import type { RawFinding } from "../types.js";
import { parseShell, type File } from "./ast.js";
import { analyzeFlow, FlowBudgetExceeded } from "./flow.js";
import { bakeFindings, runtimeConfig } from "./packages.js";

/** deploy: run from CI or a laptop against a fleet; bake: runs inside an image build; userdata: runs on an instance at boot. */
export type ShellRole = "deploy" | "bake" | "userdata";

export type ShellCheck = { findings: RawFinding[]; role: ShellRole } | { error: { line: number; col: number; message: string } };

export function checkShell(text: string, name: string, role?: ShellRole): ShellCheck {
  const parsed = parseShell(text, name);
  if ("error" in parsed) return parsed;
  let findings: RawFinding[];
  try {
    findings = analyzeFlow(parsed.file, { text }).findings;
  } catch (e) {
    if (e instanceof FlowBudgetExceeded) return { error: { line: e.at.line, col: e.at.col, message: e.message } };
    throw e;
  }
  const r = role ?? detectRole(name);
  // A bake script or user data runs on the one machine it configures, before it serves:
  // stopping or restarting a unit there removes no fleet capacity.
  if (r !== "deploy") findings = findings.filter((f) => !DEPLOY_PATH.has(f.ruleId));
  if (r === "bake") findings.push(...bakeFindings(parsed.file));
  if (r === "userdata") findings.push(...userDataFindings(parsed.file));
  return { findings, role: r };
}

const DEPLOY_PATH = new Set(["KR001", "KR002", "KR003", "KR019"]);

export function userDataFindings(file: File, map: (p: { line: number; col: number }) => { line: number; col: number } = (p) => p): RawFinding[] {
  return runtimeConfig(file).map(({ pos, what }) => ({
    ruleId: "KR033",
    pos: map(pos),
    message: `user data ${what} at boot: every instance is configured after launch instead of being baked`,
  }));
}

/**
 * A script's role when no Packer template names it: user data by its name, a bake script by
 * the folder it lives in (packer/, provisioners/, bake/…); anything else is read as a deploy
 * script, whose own package installs (a CI runner installing jq) concern nobody's fleet.
 */
function detectRole(name: string): ShellRole {
  if (/user[-_]?data|cloud[-_]?init/i.test(basename(name))) return "userdata";
  if (/(^|\/)(packer|provision|provisioners|provisioning|bake|baking|image-build)\//i.test(name)) return "bake";
  return "deploy";
}
