// The shell checker: parse, follow the control flow (flow.ts), and, by the script's role,
// the bake rules (a Packer provisioner script) or the configuration-after-deploy rule
// (user data).

import { basename } from "node:path";
import type { RawFinding } from "../types.js";
import { nodeType, parseShell, wordInfo, type CallExpr, type File } from "./ast.js";
import { unwrap } from "./commands.js";
import { analyzeFlow } from "./flow.js";
import { bakeFindings, runtimeConfig } from "./packages.js";
import { walkStmts } from "./walk.js";

/** deploy: run from CI or a laptop against a fleet; bake: runs inside an image build; userdata: runs on an instance at boot. */
export type ShellRole = "deploy" | "bake" | "userdata";

const DEPLOY_TOOLS = new Set(["aws", "kubectl", "oc", "helm", "docker", "podman", "docker-compose", "terraform", "tofu", "gcloud", "az", "nomad", "ssh", "scp", "ansible", "ansible-playbook", "eksctl", "ecs-cli"]);

export type ShellCheck = { findings: RawFinding[]; role: ShellRole } | { error: { line: number; col: number; message: string } };

export function checkShell(text: string, name: string, role?: ShellRole): ShellCheck {
  const parsed = parseShell(text, name);
  if ("error" in parsed) return parsed;
  const findings = analyzeFlow(parsed.file, { text }).findings;
  const r = role ?? detectRole(parsed.file, name);
  if (r === "bake") findings.push(...bakeFindings(parsed.file));
  if (r === "userdata") findings.push(...userDataFindings(parsed.file));
  return { findings, role: r };
}

export function userDataFindings(file: File, map: (p: { line: number; col: number }) => { line: number; col: number } = (p) => p): RawFinding[] {
  return runtimeConfig(file).map(({ pos, what }) => ({
    ruleId: "KR033",
    pos: map(pos),
    message: `user data ${what} at boot: every instance is configured after launch instead of being baked`,
  }));
}

function detectRole(file: File, name: string): ShellRole {
  if (/user[-_]?data|cloud[-_]?init/i.test(basename(name))) return "userdata";
  let deploy = false;
  walkStmts(file.Stmts, (st) => {
    if (nodeType(st.Cmd) !== "CallExpr") return;
    const words = unwrap(((st.Cmd as unknown as CallExpr).Args ?? []).map(wordInfo));
    const cmd = words[0]?.text ?? "";
    if (DEPLOY_TOOLS.has(cmd.slice(cmd.lastIndexOf("/") + 1))) deploy = true;
  });
  return deploy ? "deploy" : "bake";
}
