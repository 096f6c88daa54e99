// Package managers and remote-script pipes, read from parsed shell: in a bake they must be
// pinned and must not upgrade everything (KR034–KR036); on a running instance (user data,
// ssh, exec, a container's start command) any of them is configuration after deploy (KR033).

import type { Pos, RawFinding } from "../types.js";
import { nodeType, pos as posOf, wordInfo, type BinaryCmd, type CallExpr, type File, type Stmt, type WordInfo, OP } from "./ast.js";
import { unwrap } from "./commands.js";
import { walkStmts } from "./walk.js";

export type PackageUse =
  | { kind: "upgrade"; tool: string }
  | { kind: "install"; tool: string; unpinned: string[] }
  | { kind: "pipe-to-shell"; tool: string }
  | { kind: "config-management"; tool: string };

const base = (s: string) => s.slice(s.lastIndexOf("/") + 1);

function positionalsAfter(args: WordInfo[], withValue: ReadonlySet<string>): WordInfo[] {
  const out: WordInfo[] = [];
  for (let i = 0; i < args.length; i++) {
    const t = args[i]!.text;
    if (t.startsWith("-")) {
      if (withValue.has(t)) i++;
      continue;
    }
    out.push(args[i]!);
  }
  return out;
}

const variable = (t: string) => t.includes("${") || t.includes("$(") || t.startsWith("$");

/** What a simple command does with packages, if anything. */
export function packageUse(argvIn: WordInfo[]): PackageUse | undefined {
  let argv = unwrap(argvIn);
  if (argv.length === 0) return undefined;
  let cmd = base(argv[0]!.text);
  if (/^python[0-9.]*$/.test(cmd) && argv[1]?.text === "-m" && argv[2]?.text.startsWith("pip")) {
    argv = argv.slice(2);
    cmd = "pip";
  }
  const args = argv.slice(1);
  switch (cmd) {
    case "apt-get":
    case "apt":
    case "aptitude": {
      const p = positionalsAfter(args, new Set(["-o", "-c", "-t", "--target-release"]));
      const sub = p[0]?.text;
      if (sub === "upgrade" || sub === "dist-upgrade" || sub === "full-upgrade") return { kind: "upgrade", tool: `${cmd} ${sub}` };
      if (sub === "install") {
        const pk = p.slice(1).map((w) => w.text);
        return { kind: "install", tool: `${cmd} install`, unpinned: pk.filter((x) => !x.includes("=") && !x.endsWith(".deb") && !x.includes("/") && !variable(x)) };
      }
      return undefined;
    }
    case "yum":
    case "dnf":
    case "microdnf":
    case "tdnf": {
      const p = positionalsAfter(args, new Set(["--enablerepo", "--disablerepo", "-c", "--setopt", "--releasever"]));
      const sub = p[0]?.text;
      const pk = p.slice(1).map((w) => w.text);
      if ((sub === "update" || sub === "upgrade" || sub === "distro-sync") && pk.length === 0) return { kind: "upgrade", tool: `${cmd} ${sub}` };
      if (sub === "install" || sub === "update" || sub === "upgrade") {
        return { kind: "install", tool: `${cmd} ${sub}`, unpinned: pk.filter((x) => !/-\d/.test(x) && !x.endsWith(".rpm") && !x.startsWith("@") && !x.includes("/") && !variable(x)) };
      }
      return undefined;
    }
    case "apk": {
      const p = positionalsAfter(args, new Set(["--repository", "-X", "--root", "-p"]));
      const sub = p[0]?.text;
      if (sub === "upgrade") return { kind: "upgrade", tool: "apk upgrade" };
      if (sub === "add") return { kind: "install", tool: "apk add", unpinned: p.slice(1).map((w) => w.text).filter((x) => !x.includes("=") && !variable(x)) };
      return undefined;
    }
    case "pip":
    case "pip3": {
      const p = positionalsAfter(args, new Set(["-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url", "-t", "--target", "--prefix", "--root"]));
      if (p[0]?.text !== "install") return undefined;
      const pk = p.slice(1).map((w) => w.text);
      return {
        kind: "install",
        tool: `${cmd} install`,
        unpinned: pk.filter((x) => !/(===?|@)/.test(x) && !/^(\.|\/|~|git\+|https?:)/.test(x) && !x.endsWith(".whl") && !x.endsWith(".tar.gz") && !variable(x)),
      };
    }
    case "npm": {
      const p = positionalsAfter(args, new Set(["--prefix", "--registry"]));
      const global = args.some((a) => a.text === "-g" || a.text === "--global");
      if (!global || (p[0]?.text !== "install" && p[0]?.text !== "i" && p[0]?.text !== "add")) return undefined;
      const pk = p.slice(1).map((w) => w.text);
      return { kind: "install", tool: "npm install -g", unpinned: pk.filter((x) => !/.@\d|^[^@].*@\d/.test(x) && !variable(x)) };
    }
    case "gem": {
      const p = positionalsAfter(args, new Set(["-v", "--version", "--source"]));
      if (p[0]?.text !== "install") return undefined;
      const pinned = args.some((a) => a.text === "-v" || a.text.startsWith("--version"));
      return { kind: "install", tool: "gem install", unpinned: pinned ? [] : p.slice(1).map((w) => w.text).filter((x) => !x.includes(":") && !variable(x)) };
    }
    case "snap":
      return args[0]?.text === "install" ? { kind: "install", tool: "snap install", unpinned: args.slice(1).filter((a) => !a.text.startsWith("-")).map((a) => a.text) } : undefined;
    case "ansible-pull":
    case "ansible-playbook":
    case "chef-client":
    case "chef-solo":
    case "salt-call":
      return { kind: "config-management", tool: cmd };
    case "puppet":
      return args[0]?.text === "apply" || args[0]?.text === "agent" ? { kind: "config-management", tool: `puppet ${args[0].text}` } : undefined;
    case "git":
      return args[0]?.text === "pull" || args[0]?.text === "clone" ? { kind: "config-management", tool: `git ${args[0].text}` } : undefined;
    case "bash":
    case "sh":
      // `bash -c "$(curl -fsSL https://…)"`, `bash <(curl …)`
      if (argv.slice(1).some((a) => a.substs.some((list) => list.some((st) => fetches(st))))) return { kind: "pipe-to-shell", tool: `${cmd} $(curl …)` };
      return undefined;
    default:
      return undefined;
  }
}

function callArgv(st: Stmt): WordInfo[] | undefined {
  if (nodeType(st.Cmd) !== "CallExpr") return undefined;
  const args = (st.Cmd as unknown as CallExpr).Args ?? [];
  return args.length > 0 ? args.map(wordInfo) : undefined;
}

function fetches(st: Stmt): boolean {
  const argv = callArgv(st);
  if (argv) {
    const c = base(unwrap(argv)[0]?.text ?? "");
    return c === "curl" || c === "wget";
  }
  return pipeParts(st).some((p) => p !== st && fetches(p));
}

function pipeParts(st: Stmt): Stmt[] {
  if (nodeType(st.Cmd) === "BinaryCmd") {
    const b = st.Cmd as unknown as BinaryCmd;
    if (b.Op === OP.pipe || b.Op === OP.pipeAll) return [...pipeParts(b.X), ...pipeParts(b.Y)];
  }
  return [st];
}

const SHELLS = /^(sh|bash|zsh|dash|ksh|python[0-9.]*|perl|ruby)$/;

/** Every package use in a parsed script, with where it is. */
export function packageUses(file: File): { use: PackageUse; pos: Pos }[] {
  const out: { use: PackageUse; pos: Pos }[] = [];
  const pipesSeen = new Set<Stmt>();
  walkStmts(file.Stmts, (st) => {
    if (nodeType(st.Cmd) === "BinaryCmd") {
      const parts = pipeParts(st);
      if (parts.length > 1 && !parts.some((p) => pipesSeen.has(p))) {
        parts.forEach((p) => pipesSeen.add(p));
        const i = parts.findIndex((p) => fetches(p));
        const j = parts.findIndex((p, k) => k > i && SHELLS.test(base(unwrap(callArgv(p) ?? [])[0]?.text ?? "")));
        if (i >= 0 && j > i) out.push({ use: { kind: "pipe-to-shell", tool: "curl … | sh" }, pos: posOf(st) });
      }
      return;
    }
    const argv = callArgv(st);
    if (!argv) return;
    const use = packageUse(argv);
    if (use) out.push({ use, pos: posOf(st) });
  });
  return out;
}

/** KR034–KR036 for a bake script. `map` moves a position from the script to its file. */
export function bakeFindings(file: File, map: (p: Pos) => Pos = (p) => p): RawFinding[] {
  const out: RawFinding[] = [];
  for (const { use, pos } of packageUses(file)) {
    if (use.kind === "upgrade") out.push({ ruleId: "KR034", pos: map(pos), message: `\`${use.tool}\` upgrades every package to whatever the mirror serves at bake time` });
    else if (use.kind === "install" && use.unpinned.length > 0) {
      const list = use.unpinned.slice(0, 3).join(", ") + (use.unpinned.length > 3 ? ", …" : "");
      out.push({ ruleId: "KR035", pos: map(pos), message: `\`${use.tool}\` installs ${list} without a version` });
    } else if (use.kind === "pipe-to-shell") out.push({ ruleId: "KR036", pos: map(pos), message: "a script downloaded at bake time is piped straight into a shell, unpinned and unverified" });
  }
  return out;
}

/** What a script run on a live instance does that only a bake should do (KR033), by position. */
export function runtimeConfig(file: File): { pos: Pos; what: string }[] {
  return packageUses(file).map(({ use, pos }) => ({
    pos,
    what:
      use.kind === "upgrade"
        ? `upgrades packages (\`${use.tool}\`)`
        : use.kind === "install"
          ? `installs packages (\`${use.tool}\`)`
          : use.kind === "pipe-to-shell"
            ? "pipes a downloaded script into a shell"
            : `runs \`${use.tool}\``,
  }));
}

/** Descriptions of configuration a remote script (ssh, exec, SSM) applies. */
export function checkRemoteScript(file: File): string[] {
  return runtimeConfig(file).map((r) => r.what);
}
