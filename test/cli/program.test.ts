// `kiln --help` lists verbs from the help index the build wrote, without loading their modules:
// these hold the index equal to what the modules register, so it can never drift.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommanderError, type Command } from "commander";
import { buildProgram, fullProgram, helpIndexOf, MODULES, newProgram, planLoad, readHelpIndex, registerIndex, type LoadPlan } from "../../src/cli/program.js";

/** A plan as a short word: the module's first verb, "all" or "index". */
const planName = (p: LoadPlan) => (p.kind === "module" ? p.entry.verbs[0] : p.kind);

/** Its help text and what it writes to stderr for an argument list, parsed without exiting. */
async function run(program: Command, args: string[]): Promise<{ err: string; code?: string }> {
  let err = "";
  program.configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} });
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(["node", "kiln", ...args]);
    return { err };
  } catch (e) {
    assert.ok(e instanceof CommanderError, String(e));
    return { err, code: e.code };
  }
}

describe("verb modules and the help index", () => {
  it("planLoad: the worked examples", () => {
    const rows: Array<[string[], string | undefined]> = [
      [["status", "--json"], "status"],
      [["help", "deploy"], "deploy"],
      [["deploy", "--help"], "deploy"],
      [["-f", "x.yaml", "history"], "status"], // history shares status's module
      [["completion", "bash"], "all"],
      [["--help"], "index"],
      [[], "index"],
      [["help"], "index"],
      [["deplyo"], "index"],
    ];
    for (const [args, want] of rows) assert.equal(planName(planLoad(args)), want, args.join(" "));
  });

  it("each module registers exactly the verbs MODULES says it does", async () => {
    for (const m of MODULES) {
      const p = newProgram();
      (await m.load()).register(p);
      assert.deepEqual(p.commands.map((c) => c.name()).sort(), [...m.verbs].sort(), `module of ${m.verbs[0]}`);
    }
  });

  it("the build's index is what the modules register", async () => {
    const built = readHelpIndex();
    assert.ok(built, "dist/src/cli/help-index.json is missing or older than a verb module: build with `npm run build`");
    assert.deepEqual(built, helpIndexOf(await fullProgram()));
  });

  it("`kiln --help` from the index reads exactly as with every module loaded", async () => {
    const full = await fullProgram();
    const listed = newProgram();
    registerIndex(listed, helpIndexOf(full));
    assert.equal(listed.helpInformation(), full.helpInformation());
    assert.match(listed.helpInformation(), /\n {2}deploy \[options\] \[ref\] +replace the fleet/);
    assert.match(listed.helpInformation(), /\n {2}help \[command\] +display help for command/);
  });

  it("an unknown verb is refused with the same suggestion", async () => {
    const listed = newProgram();
    registerIndex(listed, helpIndexOf(await fullProgram()));
    const fromIndex = await run(listed, ["deplyo"]);
    assert.equal(fromIndex.code, "commander.unknownCommand");
    assert.match(fromIndex.err, /unknown command 'deplyo'\n\(Did you mean deploy\?\)/);
    assert.deepEqual(await run(await fullProgram(), ["deplyo"]), fromIndex);
  });

  it("buildProgram loads one module for a verb, the index for help", async () => {
    const names = (p: Command) => p.commands.map((c) => c.name());
    assert.deepEqual(names(await buildProgram(["status"])), ["status", "history", "events", "logs"]);
    assert.deepEqual(names(await buildProgram(["--help"])), names(await fullProgram()));
  });
});
