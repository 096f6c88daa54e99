#!/usr/bin/env node
// kiln's command line. Each verb lives in verbs/ and only parses, calls and renders;
// this file is the one place that prints errors and picks exit codes (0 ok, 1 failed, 2 bad input).

import { readFileSync } from "node:fs";
import { CommanderError } from "commander";
import { EXIT, fromSystemError, isKilnError, type KilnError } from "../errors.js";
import { rewriteLogsFollow } from "./args.js";
import { dim as paintDim, red as paintRed, styleFor } from "./output.js";
import { buildProgram, verbOf } from "./program.js";

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
  const program = await buildProgram(argv.slice(2));
  const verbose = argv.includes("--verbose");
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT.ok;
      return EXIT.badInput;
    }
    // A full disk is the user's to fix, not a kiln bug: a KilnError too (errors.ts fromSystemError).
    const k = isKilnError(e) ? e : fromSystemError(e);
    if (k) {
      printError(k, verbose);
      return k.exitCode;
    }
    process.stderr.write(`${red("internal error")}: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.failed;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
