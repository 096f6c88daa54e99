// `kiln init [DIR]`: scaffold a commented kiln.yaml for an existing app.
// scan (read the project) → plan (pure) → check (the result validates) → write.

import { closeSync, constants, lstatSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { KilnError } from "../errors.js";
import type { PinnedPackage } from "../generate/index.js";
import { parseSpec } from "../config/index.js";
import { parsePackageList, resolvePackages, systemRunner, type Runner } from "./packages.js";
import { planInit, type InitPlan } from "./plan.js";
import { scanProject } from "./scan.js";

export { planInit, serviceName, entryFromStartScript, yamlString, type InitPlan, type InitFile, type Runtime } from "./plan.js";
export { scanProject, parseDockerfile, HEALTH_ROUTES, type ProjectFacts } from "./scan.js";
export {
  parsePackageList,
  resolvePackages,
  parseInstalled,
  parseCandidate,
  installedVersionCommand,
  candidateVersionCommand,
  systemRunner,
  type Runner,
  type CommandEntry,
  type CommandResult,
} from "./packages.js";
export { STATIC_SERVER_FILE, staticServerSource } from "./static-server.js";

export interface InitOptions {
  force?: boolean;
  /** a file listing Debian packages, one a line */
  packagesFile?: string;
}

export interface InitResult {
  dir: string;
  plan: InitPlan;
  packages: PinnedPackage[];
  /** absolute paths written */
  written: string[];
}

export function initProject(dirArg: string, opts: InitOptions = {}, run: Runner = systemRunner): InitResult {
  const dir = resolve(dirArg);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new KilnError("KILN_E_USAGE", `${dirArg} is not a directory`, { hint: "pass the directory of the app: kiln init path/to/app" });

  // Refuse before doing anything else, so a refused init changes nothing and costs nothing.
  const target = join(dir, "kiln.yaml");
  if (present(target) && !opts.force) {
    throw new KilnError("KILN_E_USAGE", `${target} already exists`, { hint: "kiln init never overwrites it: pass --force to replace it" });
  }

  let packages: PinnedPackage[] = [];
  if (opts.packagesFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.packagesFile, "utf8");
    } catch (e) {
      throw new KilnError("KILN_E_USAGE", `cannot read ${opts.packagesFile} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
    }
    packages = resolvePackages(parsePackageList(text, opts.packagesFile), opts.packagesFile, run);
  }

  const plan = planInit(scanProject(dir), { packages });
  const conflicts = plan.files.filter((f) => f.path !== "kiln.yaml" && !f.update && present(join(dir, f.path)) && !opts.force);
  if (conflicts.length) {
    throw new KilnError("KILN_E_USAGE", `kiln init would overwrite ${conflicts.map((f) => f.path).join(", ")}`, { hint: "move it away, or pass --force" });
  }
  const yaml = plan.files[0]!;
  const checked = parseSpec(yaml.content, target);
  if ("errors" in checked) {
    // A bug in planInit, not a user error: say what it wrote and why it is invalid.
    throw new KilnError("KILN_E_INTERNAL", "kiln init produced an invalid kiln.yaml", { details: checked.errors });
  }
  const written: string[] = [];
  for (const f of plan.files) {
    const p = join(dir, f.path);
    if (f.update) replaceRegular(p, f.content);
    else writeNew(p, f.content, opts.force === true);
    written.push(p);
  }
  return { dir, plan, packages, written };
}

/**
 * Replace a file kiln init extends (`.gitignore`: the plan holds its whole new content): a new
 * file beside it, created with O_EXCL, renamed over it — a rename replaces the name, never
 * writes through it. Only a regular file (or nothing) is replaced: a symlink there is refused.
 */
function replaceRegular(path: string, content: string): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st && !st.isFile()) throw new KilnError("KILN_E_USAGE", `${path} is not a regular file`, { hint: "kiln init extends a regular file only: replace it with one, or add `.kiln/` to it yourself" });
  const tmp = `${path}.kiln-init-${process.pid}`;
  writeNew(tmp, content, true);
  renameSync(tmp, path);
}

/** lstat, not stat: a dangling symlink is "present" (writing through it would create its target). */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Create `path` with O_EXCL|O_NOFOLLOW, so a symlink planted at the path (even a
 * dangling one) is never written through. --force removes what is there first:
 * unlink removes a symlink itself, never its target.
 */
function writeNew(path: string, content: string, force: boolean): void {
  if (force) {
    const st = (() => {
      try {
        return lstatSync(path);
      } catch {
        return undefined;
      }
    })();
    if (st?.isDirectory()) throw new KilnError("KILN_E_USAGE", `${path} is a directory`, { hint: "move it away; kiln init writes a file there" });
    if (st) unlinkSync(path);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KilnError("KILN_E_USAGE", `cannot create ${path} (${code ?? String(e)})`, {
      hint: code === "EEXIST" ? "something (perhaps a symlink) appeared there; kiln init never writes through it: move it away" : "check the directory's permissions",
      cause: e,
    });
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}
