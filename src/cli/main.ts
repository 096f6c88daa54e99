#!/usr/bin/env node
// kiln's command line. Each verb lives in verbs/ and only parses, calls and renders;
// this file is the one place that prints errors and picks exit codes (0 ok, 1 failed, 2 bad input).

import { Command, CommanderError } from "commander";
import { EXIT, isKilnError, type KilnError } from "../errors.js";
import * as audit from "./verbs/audit.js";
import * as bake from "./verbs/bake.js";
import * as demo from "./verbs/demo.js";
import * as deploy from "./verbs/deploy.js";
import * as doctor from "./verbs/doctor.js";
import * as gc from "./verbs/gc.js";
import * as plan from "./verbs/plan.js";
import * as pull from "./verbs/pull.js";
import * as push from "./verbs/push.js";
import * as review from "./verbs/review.js";
import * as sbom from "./verbs/sbom.js";
import * as generate from "./verbs/generate.js";
import * as init from "./verbs/init.js";
import * as maintenance from "./verbs/maintenance.js";
import * as spec from "./verbs/spec.js";
import * as status from "./verbs/status.js";
import * as up from "./verbs/up.js";

const useColor = process.stderr.isTTY && !process.env.NO_COLOR;
const red = (s: string) => (useColor ? `\x1b[31m${s}\x1b[0m` : s);
const dim = (s: string) => (useColor ? `\x1b[2m${s}\x1b[0m` : s);

function printError(e: KilnError, verbose: boolean): void {
  process.stderr.write(`${red("error")} ${e.code}: ${e.message}\n`);
  for (const d of e.details) {
    process.stderr.write(`  ${d.where ? `${d.where}  ` : ""}${d.path ? `${d.path}: ` : ""}${d.message}\n`);
    if (d.hint) process.stderr.write(`      ${dim(`hint: ${d.hint}`)}\n`);
  }
  if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  if (verbose && e.cause) process.stderr.write(`${dim(String((e.cause as Error).stack ?? e.cause))}\n`);
}

export function buildProgram(): Command {
  const program = new Command("kiln")
    .description("bake a content-addressed image, deploy only that image, replace instances to change anything")
    .option("-f, --file <path>", "the kiln.yaml to use", "kiln.yaml")
    .option("--verbose", "show stack traces of errors")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  init.register(program);
  spec.register(program);
  bake.register(program);
  up.register(program);
  deploy.register(program);
  plan.register(program);
  status.register(program);
  maintenance.register(program);
  demo.register(program);
  review.register(program);
  generate.register(program);
  push.register(program);
  pull.register(program);
  doctor.register(program);
  gc.register(program);
  audit.register(program);
  sbom.register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

// `kiln images | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
