// Pure path arithmetic for paths inside an image. Image paths are handled as
// component lists relative to the image root; nothing here touches the host.

import { KilnError } from "../errors.js";

/**
 * "/usr/local/bin/node" → "usr/local/bin/node"; "/" → "". Refuses relative
 * paths and ".." components (KILN_E_IMAGE): dest paths come from kiln.yaml.
 */
export function imagePathFromDest(dest: string, where?: string): string {
  if (!dest.startsWith("/")) {
    throw new KilnError("KILN_E_IMAGE", `destination ${JSON.stringify(dest)} is not an absolute path`, {
      hint: 'write image paths from the root, e.g. "/app/server.js"',
      details: where ? [{ where, message: "relative destination" }] : [],
    });
  }
  const parts = dest.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..") || dest.includes("\0")) {
    throw new KilnError("KILN_E_IMAGE", `destination ${JSON.stringify(dest)} contains ".."`, {
      hint: "destinations must stay inside the image; write the final path",
      details: where ? [{ where, message: "'..' in destination" }] : [],
    });
  }
  return parts.join("/");
}

/**
 * Why an archive entry name is unsafe to extract, or undefined when it is
 * fine. Names are relative ("usr/bin/x", "./usr/bin/x"); absolute names and
 * ".." components are refused rather than rewritten.
 */
export function unsafeEntryName(name: string): string | undefined {
  if (name.includes("\0")) return "NUL byte in path";
  if (name.startsWith("/")) return "absolute path";
  if (name.split("/").includes("..")) return '".." component';
  return undefined;
}

/** Split an archive entry name into clean components ("./a//b/" → ["a","b"]). */
export function entryComponents(name: string): string[] {
  return name.split("/").filter((p) => p !== "" && p !== ".");
}

/**
 * Resolve a symlink target lexically against the directory holding the link,
 * both as component lists from the image root. Returns undefined when a ".."
 * climbs above the root (the link escapes). Absolute targets start at the
 * image root: inside a sandbox whose root is the image, that is where they point.
 */
export function resolveLinkTarget(linkDir: string[], target: string): string[] | undefined {
  const out = target.startsWith("/") ? [] : [...linkDir];
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else {
      out.push(part);
    }
  }
  return out;
}

/** Byte-wise (UTF-8) order, the order entries are written to a tar. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
