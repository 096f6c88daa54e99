// `kiln completion bash|zsh|fish` in the real shells: the script loads, and Tab (driven the way
// each shell's completion machinery calls it) offers verbs, sub-verbs, flags and flag values.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { hasTool, kiln, requireTool } from "../../integration/support.js";

const dir = mkdtempSync(join(tmpdir(), "kiln-completion-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function script(shell: string): Promise<string> {
  const r = await kiln(["completion", shell], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const file = join(dir, `kiln.${shell}`);
  writeFileSync(file, r.stdout);
  return file;
}

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", timeout: 30_000, cwd: dir });

test("bash: Tab completes verbs, sub-verbs, flags and flag values", async () => {
  const file = await script("bash");
  const out = run("bash", ["-c", `source ${file}
t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); COMPREPLY=(); _kiln; echo "\${COMPREPLY[*]}"; }
t kiln dep; t kiln deploy --str; t kiln deploy --strategy blue; t kiln -f x.yaml rollout ""; t kiln status --w; t kiln completion z`]);
  assert.deepEqual(out.trim().split("\n"), ["deploy", "--strategy", "blue-green", "watch", "--watch", "zsh"]);
});

test("fish: complete -C offers the same", async (t) => {
  if (!requireTool(hasTool("fish"), "fish is not installed (apt-get install fish)", t)) return;
  const file = await script("fish");
  const first = (line: string) => run("fish", ["-c", `source ${file}; complete -C '${line}'`]).trim().split("\n").map((l) => l.split("\t")[0]);
  assert.deepEqual(first("kiln dep"), ["deploy"]);
  assert.deepEqual(first("kiln deploy --strategy "), ["blue-green", "canary", "rolling"]);
  assert.deepEqual(first("kiln rollout "), ["watch"]);
  assert.ok(first("kiln status --w").includes("--watch"));
});

test("zsh: the script parses, registers with compdef, and its walk offers the same", async (t) => {
  if (!requireTool(hasTool("zsh"), "zsh is not installed (apt-get install zsh)", t)) return;
  const file = await script("zsh");
  run("zsh", ["-n", file]);
  // compinit's compdef is real; _describe, compadd and _files (which need a live completion widget) print what they were given.
  const out = run("zsh", ["-f", "-c", `autoload -U compinit && compinit -u -D && source ${file} && print -r -- "registered: \${_comps[kiln]}"
_describe() { local n=\${@[-1]}; print -rl -- "\${(@P)n}" | cut -d: -f1 | tr '\\n' ' '; echo; }
compadd() { shift; print -r -- "$@"; }
_files() { print FILES; }
t() { words=("$@"); CURRENT=\${#words}; PREFIX=\${words[-1]}; _kiln; }
t kiln deploy --strategy ""; t kiln -f x.yaml rollout ""; t kiln -f ""; t kiln completion ""`]);
  const lines = out.trim().split("\n").map((l) => l.trim());
  assert.deepEqual(lines, ["registered: _kiln", "rolling blue-green canary", "watch", "FILES", "bash zsh fish"]);
});
