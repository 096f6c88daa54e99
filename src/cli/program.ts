// kiln's commander program, built with only the verb modules a command line needs.
//
// Start-up is most of a short verb's time, so a verb's module is imported only when that verb
// runs, and `kiln --help` (or an unknown verb's "did you mean") imports none: it lists the verbs
// from the help index, one line per command, that the build wrote from the modules themselves
// (scripts/postbuild.mjs → dist/src/cli/help-index.json; test/cli/program.test.ts holds the two
// equal). Without an index (tsc alone) or with one older than a verb module, every module is
// loaded instead, as `kiln completion` always does: same program, only slower.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { Command, Help } from "commander";
import { KilnError } from "../errors.js";

/** A verb's module: `register` adds its commands to the program. */
export type VerbModule = { register(program: Command): void };

/** Which verbs a module registers, and how to load it. */
export interface VerbModuleEntry {
  verbs: string[];
  load: () => Promise<VerbModule>;
}

// In help order; several verbs share a module.
export const MODULES: VerbModuleEntry[] = [
  { verbs: ["init"], load: () => import("./verbs/init.js") },
  { verbs: ["validate", "schema"], load: () => import("./verbs/spec.js") },
  { verbs: ["bake"], load: () => import("./verbs/bake.js") },
  { verbs: ["export"], load: () => import("./verbs/export.js") },
  { verbs: ["images"], load: () => import("./verbs/images.js") },
  { verbs: ["outdated"], load: () => import("./verbs/outdated.js") },
  { verbs: ["rebake"], load: () => import("./verbs/rebake.js") },
  { verbs: ["up", "down"], load: () => import("./verbs/up.js") },
  { verbs: ["deploy", "rollback", "scale", "promote", "pause", "resume", "abort"], load: () => import("./verbs/deploy.js") },
  { verbs: ["plan", "simulate"], load: () => import("./verbs/plan.js") },
  { verbs: ["status", "history", "events", "logs"], load: () => import("./verbs/status.js") },
  { verbs: ["maintenance"], load: () => import("./verbs/maintenance.js") },
  { verbs: ["dashboard"], load: () => import("./verbs/dashboard.js") },
  { verbs: ["promote-release"], load: () => import("./verbs/promote-release.js") },
  { verbs: ["drill"], load: () => import("./verbs/drill.js") },
  { verbs: ["demo"], load: () => import("./verbs/demo.js") },
  { verbs: ["review"], load: () => import("./verbs/review.js") },
  { verbs: ["generate"], load: () => import("./verbs/generate.js") },
  { verbs: ["push"], load: () => import("./verbs/push.js") },
  { verbs: ["pull"], load: () => import("./verbs/pull.js") },
  { verbs: ["doctor"], load: () => import("./verbs/doctor.js") },
  { verbs: ["gc"], load: () => import("./verbs/gc.js") },
  { verbs: ["audit"], load: () => import("./verbs/audit.js") },
  { verbs: ["sbom"], load: () => import("./verbs/sbom.js") },
  { verbs: ["sign", "keys", "provenance"], load: () => import("./verbs/sign.js") },
  { verbs: ["verify"], load: () => import("./verbs/verify.js") },
  { verbs: ["rollout"], load: () => import("./verbs/rollout.js") },
  { verbs: ["completion"], load: () => import("./verbs/completion.js") },
];

/**
 * The verb an argument list names: the first word that is not a global option or its value.
 *
 *   ["-f", "x.yaml", "deploy", "--json"] → "deploy"     ["--verbose", "status"] → "status"
 *   ["--help"] → undefined                              ["--file=x.yaml", "gc"] → "gc"
 *   ["--env", "staging", "status"] → "status"
 */
export function verbOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-f" || a === "--file" || a === "-e" || a === "--env") i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

/** What a command line needs loaded: one module, every module, or just the help index. */
export type LoadPlan = { kind: "module"; entry: VerbModuleEntry } | { kind: "all" } | { kind: "index" };

/**
 * What to load for an argument list (`help VERB` is VERB's help, so VERB's module).
 *
 *   ["status", "--json"] → module of status         ["help", "deploy"] → module of deploy
 *   ["deploy", "--help"] → module of deploy         ["completion", "bash"] → all (it describes every verb)
 *   ["--help"], [], ["help"] → index                ["deplyo"] → index (commander suggests "deploy")
 */
export function planLoad(args: string[], modules: readonly VerbModuleEntry[] = MODULES): LoadPlan {
  let verb = verbOf(args);
  if (verb === "help") verb = verbOf(args.slice(args.indexOf("help") + 1));
  if (verb === "completion") return { kind: "all" };
  const entry = verb === undefined ? undefined : modules.find((m) => m.verbs.includes(verb));
  return entry ? { kind: "module", entry } : { kind: "index" };
}

/** The program with kiln's global options and no verbs. */
export function newProgram(): Command {
  return new Command("kiln")
    .description("bake a content-addressed image, deploy only that image, replace instances to change anything")
    .option("-f, --file <path>", "the kiln.yaml to use", "kiln.yaml")
    .option("-e, --env <name>", "the kiln.yaml environment to act on (default: $KILN_ENV, else defaultEnvironment, else the first listed)")
    .option("--verbose", "show stack traces of errors")
    .option("-q, --quiet", "no progress lines or bars on stderr (also KILN_PROGRESS=off)")
    .option("-V, --version", "print kiln's version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
}

/** One command as `kiln --help` lists it. */
export interface HelpEntry {
  name: string;
  aliases: string[];
  hidden: boolean;
  /** "deploy [options] [ref]": the left column of the verb list */
  term: string;
  description: string;
}

export const HELP_INDEX_FILE = "help-index.json";

/** The help index of a program with verbs registered: what its `--help` lists, and the hidden ones. */
export function helpIndexOf(program: Command): HelpEntry[] {
  const help = program.createHelp();
  const visible = new Set(help.visibleCommands(program));
  return program.commands.map((c) => ({
    name: c.name(),
    aliases: c.aliases(),
    hidden: !visible.has(c),
    term: help.subcommandTerm(c),
    description: help.subcommandDescription(c),
  }));
}

/** The program with every verb module registered (help index, completion). */
export async function fullProgram(modules: readonly VerbModuleEntry[] = MODULES): Promise<Command> {
  const program = newProgram();
  for (const m of modules) (await m.load()).register(program);
  return program;
}

/**
 * Registers the index's verbs as listings only: help shows their terms and descriptions, and
 * commander's "did you mean" offers their names. None of them ever runs: main builds these only
 * for a command line that names no module's verb.
 */
export function registerIndex(program: Command, index: readonly HelpEntry[]): void {
  const terms = new Map(index.map((e) => [e.name, e.term]));
  for (const e of index) {
    program
      .command(e.name, { hidden: e.hidden })
      .aliases(e.aliases)
      .description(e.description)
      .action(() => {
        throw new KilnError("KILN_E_INTERNAL", `the verb "${e.name}" is in kiln's help index but in none of its verb modules`, { hint: "rebuild kiln: `npm run build`" });
      });
  }
  // A listing has no options or arguments of its own: its term comes from the index; commander's
  // own `help [command]` keeps its usual one.
  program.configureHelp({ subcommandTerm: (c) => terms.get(c.name()) ?? Help.prototype.subcommandTerm.call(program.createHelp(), c) });
}

/** The build's help index, or undefined when there is none or a verb module is newer than it. */
export function readHelpIndex(): HelpEntry[] | undefined {
  const file = new URL(`./${HELP_INDEX_FILE}`, import.meta.url);
  try {
    const written = statSync(file).mtimeMs;
    const verbs = new URL("./verbs/", import.meta.url);
    const sources = [new URL("./program.js", import.meta.url), ...readdirSync(verbs).filter((f) => f.endsWith(".js")).map((f) => new URL(f, verbs))];
    if (sources.some((f) => statSync(f).mtimeMs > written)) return undefined;
    return JSON.parse(readFileSync(file, "utf8")) as HelpEntry[];
  } catch {
    return undefined;
  }
}

/** The program a command line needs (see planLoad). */
export async function buildProgram(args: string[]): Promise<Command> {
  const plan = planLoad(args);
  let program: Command;
  if (plan.kind === "module") {
    program = newProgram();
    (await plan.entry.load()).register(program);
  } else {
    const index = plan.kind === "index" ? readHelpIndex() : undefined;
    if (index) registerIndex((program = newProgram()), index);
    else program = await fullProgram();
  }
  for (const c of program.commands) c.exitOverride();
  return program;
}
