// Image references: `latest` or no tag (KR030), a tag without a digest (KR031).

import type { Pos, RawFinding } from "../types.js";

/** A reference that is wholly a variable (`$IMAGE`, `${var.image}`, `{{ .Values.image }}`) says nothing. */
const WHOLLY_VARIABLE = /^(\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\{\{[^}]*\}\}|\$\(…\))$/;

export function checkImageRef(ref: string, pos: Pos): RawFinding[] {
  const r = ref.trim();
  if (r === "" || WHOLLY_VARIABLE.test(r)) return [];
  // a host path or a volume spec (`/tmp`, `./data`, `/tmp:/tmp`) is never an image reference
  if (/^[./~]/.test(r) || r.includes(":/") || /\s/.test(r)) return [];
  // a digest, literal or from a variable, pins the bytes
  if (/@sha256:/.test(r) || /@\$/.test(r) || /@\{\{/.test(r)) return [];
  const lastSlash = r.lastIndexOf("/");
  const colon = r.indexOf(":", lastSlash + 1);
  if (colon < 0) {
    // "repo/app" with no tag is "repo/app:latest"; "${REPO}/app" is still untagged
    if (/[$({]$/.test(r)) return [];
    return [{ ruleId: "KR030", pos, message: `image "${r}" has no tag, so it means "${r}:latest", which moves with every push` }];
  }
  const tag = r.slice(colon + 1);
  if (tag === "latest") return [{ ruleId: "KR030", pos, message: `image "${r}" uses the "latest" tag, which moves with every push` }];
  return [{ ruleId: "KR031", pos, message: `image "${r}" is pinned by the tag "${tag}" only; a tag can be re-pushed` }];
}
