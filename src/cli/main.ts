#!/usr/bin/env node
// kiln's command line. Each verb lives in verbs/ and only parses, calls and renders;
// this file is the one place that prints errors and picks exit codes (0 ok, 1 failed, 2 bad input).

import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { EXIT, isKilnError, type KilnError } from "../errors.js";
import { rewriteLogsFollow } from "./args.js";
import { dim as paintDim, red as paintRed, styleFor } from "./output.js";

/** A verb's module: `register` adds its commands to the program. */
type VerbModule = { register(program: Command): void };

// Verbs load only what they use: a module is imported when its verb runs (start-up is most of a
// short verb's time: `kiln validate` should not load SQLite, the Docker client and the reviewer).
// In help order; several verbs share a module.
const MODULES: Array<[verbs: string[], load: () => Promise<VerbModule>]> = [
  [["init"], () => import("./verbs/init.js")],
  [["validate", "schema"], () => import("./verbs/spec.js")],
  [["bake", "export"], () => import("./verbs/bake.js")],
  [["images"], () => import("./verbs/images.js")],
  [["outdated"], () => import("./verbs/outdated.js")],
  [["rebake"], () => import("./verbs/rebake.js")],
  [["up", "down"], () => import("./verbs/up.js")],
  [["deploy", "rollback", "scale", "promote", "pause", "resume", "abort"], () => import("./verbs/deploy.js")],
  [["plan", "simulate"], () => import("./verbs/plan.js")],
  [["status", "history", "events", "logs"], () => import("./verbs/status.js")],
  [["maintenance"], () => import("./verbs/maintenance.js")],
  [["dashboard"], () => import("./verbs/dashboard.js")],
  [["promote-release"], () => import("./verbs/promote-release.js")],
  [["drill"], () => import("./verbs/drill.js")],
  [["demo"], () => import("./verbs/demo.js")],
  [["review"], () => import("./verbs/review.js")],
  [["generate"], () => import("./verbs/generate.js")],
  [["push"], () => import("./verbs/push.js")],
  [["pull"], () => import("./verbs/pull.js")],
  [["doctor"], () => import("./verbs/doctor.js")],
  [["gc"], () => import("./verbs/gc.js")],
  [["audit"], () => import("./verbs/audit.js")],
  [["sbom"], () => import("./verbs/sbom.js")],
  [["sign", "keys", "provenance"], () => import("./verbs/sign.js")],
  [["verify"], () => import("./verbs/verify.js")],
  [["rollout"], () => import("./verbs/rollout.js")],
  [["completion"], () => import("./verbs/completion.js")],
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

const errStyle = styleFor(process.stderr);
const red = (s: string) => paintRed(errStyle, s);
const dim = (s: string) => paintDim(errStyle, s);

function printError(e: KilnError, verbose: boolean): void {
  process.stderr.write(`${red("error")} ${e.code}: ${e.message}\n`);
  for (const d of e.details) {
    process.stderr.write(`  ${d.where ? `${d.where}  ` : ""}${d.path ? `${d.path}: ` : ""}${d.message}\n`);
    if (d.hint) process.stderr.write(`      ${dim(`hint: ${d.hint}`)}\n`);
  }
  if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  if (verbose && e.cause) process.stderr.write(`${dim(String((e.cause as Error).stack ?? e.cause))}\n`);
}

/** The program with the named verb's module, or every module (help, an unknown verb's suggestions). */
export async function buildProgram(verb: string | undefined): Promise<Command> {
  const program = new Command("kiln")
    .description("bake a content-addressed image, deploy only that image, replace instances to change anything")
    .option("-f, --file <path>", "the kiln.yaml to use", "kiln.yaml")
    .option("-e, --env <name>", "the kiln.yaml environment to act on (default: $KILN_ENV, else defaultEnvironment, else the first listed)")
    .option("--verbose", "show stack traces of errors")
    .option("-q, --quiet", "no progress lines or bars on stderr (also KILN_PROGRESS=off)")
    .option("-V, --version", "print kiln's version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  // `kiln completion` describes every verb: it loads them all, like help does.
  const one = verb === "completion" ? undefined : MODULES.find(([verbs]) => verb !== undefined && verbs.includes(verb));
  for (const [, load] of one ? [one] : MODULES) (await load()).register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

// `kiln images | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

/** package.json's version (dist/src/cli/main.js sits three folders below it, installed or not). */
function kilnVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  // Answered before any verb module loads.
  if (argv.length === 3 && (argv[2] === "--version" || argv[2] === "-V")) {
    process.stdout.write(`kiln ${kilnVersion()} (node ${process.versions.node})\n`);
    return EXIT.ok;
  }
  const verb = verbOf(argv.slice(2));
  argv = [...argv.slice(0, 2), ...rewriteLogsFollow(argv.slice(2), verb)];
  const program = await buildProgram(verb);
  const verbose = argv.includes("--verbose");
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT.ok;
      return EXIT.badInput;
    }
    if (isKilnError(e)) {
      printError(e, verbose);
      return e.exitCode;
    }
    process.stderr.write(`${red("internal error")}: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.failed;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
