// Packer HCL2 templates: the bake. Image names carry a version, base images are pinned,
// provisioners install pinned packages and do not upgrade everything, no secrets are
// copied in, and a VM image does not keep serving SSH.

import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { checkImageRef } from "../common/image-ref.js";
import { parseShell } from "../shell/ast.js";
import { bakeFindings } from "../shell/packages.js";
import { walkCalls } from "../shell/walk.js";
import type { Pos, RawFinding } from "../types.js";
import { amiLookup, blockLabel, hclSecrets } from "./common.js";
import { attr, attrStr, blocksOf, type HclAttr, type HclBlock, type HclBody } from "./parse.js";

/** Builders that produce a container image, where sshd is not a concern. */
const CONTAINER_BUILDERS = new Set(["docker", "podman", "lxd", "lxc", "null", "file"]);

const NAME_ATTRS = ["ami_name", "image_name", "managed_image_name", "vm_name", "snapshot_name", "template_name", "image_family"];

export interface PackerResult {
  findings: RawFinding[];
  /** absolute paths of the shell scripts its provisioners run (they are bake scripts) */
  scripts: string[];
}

export function checkPacker(body: HclBody, abs: string): PackerResult {
  const out: RawFinding[] = [...hclSecrets(body)];
  const dir = dirname(abs);
  const scripts: string[] = [];
  const sources = new Map<string, HclBlock>();
  for (const s of blocksOf(body, "source")) {
    const [type = "", name = ""] = s.labels;
    sources.set(`source.${type}.${name}`, s);
    out.push(...versionedName(s));
    for (const f of blocksOf(s.body, "source_ami_filter")) out.push(...amiLookup(f.body, `${blockLabel(s)}'s source_ami_filter`, f.pos));
    if (type === "docker") {
      const img = attr(s.body, "image");
      const ref = attrStr(img);
      if (img && ref !== undefined) out.push(...checkImageRef(ref, img.valuePos));
    }
  }
  for (const d of blocksOf(body, "data")) {
    if (d.labels[0] === "amazon-ami") out.push(...amiLookup(d.body, blockLabel(d), d.pos));
  }
  for (const b of blocksOf(body, "build")) {
    const used = listOf(attr(b.body, "sources")).map((s) => sources.get(s)).filter((s): s is HclBlock => s !== undefined);
    for (const inner of blocksOf(b.body, "source")) {
      const s = sources.get(inner.labels[0] ?? "");
      if (s) used.push(s);
    }
    const texts: string[] = [];
    for (const p of blocksOf(b.body, "provisioner")) {
      const type = p.labels[0];
      if (type === "shell") {
        const inline = attr(p.body, "inline");
        listOf(inline).forEach((cmd, i) => {
          texts.push(cmd);
          const parsed = parseShell(cmd, "inline");
          if ("error" in parsed) return;
          const at = inline!.elems[i] ?? inline!.valuePos;
          out.push(...bakeFindings(parsed.file, (q: Pos) => (q.line === 1 ? { line: at.line, col: at.col + q.col } : at)));
        });
        for (const a of [attr(p.body, "script"), attr(p.body, "scripts")]) {
          for (const rel of listOf(a)) {
            if (rel.includes("${")) continue;
            const path = resolve(dir, rel);
            scripts.push(path);
            if (existsSync(path)) texts.push(readFileSync(path, "utf8"));
          }
        }
      }
      if (type === "file") {
        const src = attr(p.body, "source") ?? attr(p.body, "sources");
        for (const s of listOf(src)) {
          if (SECRET_FILE.test(s)) out.push({ ruleId: "KR063", pos: src!.valuePos, message: `the file provisioner copies ${s} into the image` });
        }
      }
    }
    for (const pp of [...blocksOf(b.body, "post-processor"), ...blocksOf(b.body, "post-processors").flatMap((x) => blocksOf(x.body, "post-processor"))]) {
      if (pp.labels[0] !== "docker-tag") continue;
      const tags = attr(pp.body, "tags") ?? attr(pp.body, "tag");
      const list = listOf(tags);
      if (tags && list.length > 0 && list.every((t) => t === "latest")) {
        out.push({ ruleId: "KR037", pos: tags.valuePos, message: 'the image is tagged only "latest": no version says which release it is' });
      }
    }
    const vm = used.filter((s) => !CONTAINER_BUILDERS.has(s.labels[0] ?? ""));
    const sshEnabled = findSshEnable(texts);
    if (vm.length > 0 && !disablesSsh(texts)) {
      out.push({
        ruleId: "KR042",
        pos: b.pos,
        message: `this build bakes ${vm.map((s) => s.labels.join(".")).join(", ")} and no provisioner disables sshd: every instance from the image accepts SSH`,
      });
    } else if (vm.length === 0 && sshEnabled) {
      out.push({ ruleId: "KR042", pos: b.pos, message: "this container build installs or enables an SSH server" });
    }
  }
  return { findings: out, scripts };
}

const SECRET_FILE = /(^|\/)(id_(rsa|dsa|ecdsa|ed25519)|[^/]*\.pem|[^/]*\.key|[^/]*\.p12|[^/]*\.pfx|\.env(\.[^/]*)?|credentials(\.[a-z]+)?|secrets?\.(json|ya?ml|env)|kubeconfig|\.npmrc|\.pgpass)$/i;

function listOf(a: HclAttr | undefined): string[] {
  if (!a) return [];
  if (Array.isArray(a.value)) return a.value.filter((x): x is string => typeof x === "string");
  return typeof a.value === "string" ? [a.value] : [];
}

/** KR037: the artifact's name must carry a version, not only a timestamp. */
function versionedName(s: HclBlock): RawFinding[] {
  for (const n of NAME_ATTRS) {
    const a = attr(s.body, n);
    const v = attrStr(a);
    if (!a || v === undefined) continue;
    const withoutTime = v
      .replace(/\$\{\s*local\.timestamp\s*\}/g, "")
      .replace(/\$\{\s*timestamp\(\)\s*\}/g, "")
      .replace(/\$\{[^}]*(formatdate|timestamp|uuidv4|uuid)\([^}]*\}/g, "")
      .replace(/\{\{\s*(timestamp|isotime[^}]*|uuid)\s*\}\}/g, "");
    const hasVersion = /\$\{\s*(var|local)\.[A-Za-z0-9_]*(version|release|tag|sha|commit|build)[A-Za-z0-9_]*/i.test(withoutTime) || /\d+\.\d+/.test(withoutTime) || /\{\{\s*user\s+`[^`]*version/i.test(withoutTime);
    if (!hasVersion) return [{ ruleId: "KR037", pos: a.valuePos, message: `${n} "${v}" carries no version${v !== withoutTime ? " (only a timestamp)" : ""}` }];
    return [];
  }
  return [];
}

function disablesSsh(texts: string[]): boolean {
  let found = false;
  for (const t of texts) {
    const parsed = parseShell(t, "script");
    if ("error" in parsed) continue;
    walkCalls(parsed.file.Stmts, (argv) => {
      const a = argv[0] === "sudo" ? argv.slice(1) : argv;
      const s = a.join(" ");
      if (/^systemctl (disable|mask)( --now)? (ssh|sshd|ssh\.service|sshd\.service|ssh\.socket)\b/.test(s)) found = true;
      if (/^(apt-get|apt|yum|dnf) (-y )?(remove|purge|erase)\b.*\bopenssh-server\b/.test(s)) found = true;
      if (/^update-rc\.d (ssh|sshd) disable/.test(s)) found = true;
    });
  }
  return found;
}

function findSshEnable(texts: string[]): boolean {
  let found = false;
  for (const t of texts) {
    const parsed = parseShell(t, "script");
    if ("error" in parsed) continue;
    walkCalls(parsed.file.Stmts, (argv) => {
      const s = (argv[0] === "sudo" ? argv.slice(1) : argv).join(" ");
      if (/^systemctl (enable|start)( --now)? (ssh|sshd)\b/.test(s) || /^(apt-get|apt|apk|yum|dnf) (install|add)\b.*\bopenssh(-server)?\b/.test(s)) found = true;
    });
  }
  return found;
}
