import assert from "node:assert/strict";
import { test } from "node:test";
import { Command } from "commander";
import { bashScript, commandTree, fishScript, zshScript } from "../../src/cli/completion.js";

/** A program shaped like kiln's: a global valued option, a verb with a choice flag, a verb with a sub-verb. */
function program(): Command {
  const p = new Command("kiln").option("-f, --file <path>", "the kiln.yaml to use").option("--verbose", "stack traces");
  p.command("deploy [ref]").description("replace the fleet").option("--strategy <name>", "rolling, blue-green or canary").option("--json", "as JSON");
  p.command("rollout").description("follow rollouts").command("watch [id]").description("follow one: it's done when live").option("--timeout <duration>", "give up");
  p.command("completion <shell>").description("print the script");
  return p;
}

test("commandTree: verbs, sub-verbs, options with values, files and known choices", () => {
  const t = commandTree(program());
  assert.deepEqual(t.commands.map((c) => c.name), ["deploy", "rollout", "completion"]);
  assert.deepEqual(t.options.find((o) => o.long === "--file"), { long: "--file", short: "-f", description: "the kiln.yaml to use", takesValue: true, file: true, choices: undefined });
  assert.deepEqual(t.commands[0]!.options.find((o) => o.long === "--strategy")?.choices, ["rolling", "blue-green", "canary"]);
  assert.deepEqual(t.commands[1]!.commands.map((c) => c.name), ["watch"]);
  assert.deepEqual(t.commands[2]!.argChoices, ["bash", "zsh", "fish"]);
});

test("bash, zsh and fish scripts carry every verb, flag and value from the tree", () => {
  const t = commandTree(program());
  const bash = bashScript(t);
  assert.ok(bash.includes(`'') echo 'deploy rollout completion' ;;`));
  assert.ok(bash.includes(`'rollout') echo 'watch' ;;`));
  assert.ok(bash.includes(`'deploy') echo '--strategy --json -f --file --verbose' ;;`));
  assert.ok(bash.includes(`'deploy|--strategy') echo 'choice rolling blue-green canary' ;;`));
  assert.ok(bash.includes(`'rollout watch|--file') echo 'file' ;;`));
  assert.ok(bash.includes(`'completion') echo 'bash zsh fish' ;;`));
  assert.ok(bash.includes("complete -o default -F _kiln kiln"));
  const zsh = zshScript(t);
  assert.ok(zsh.startsWith("#compdef kiln\n"));
  // a quote in a description is closed, escaped and reopened
  assert.ok(zsh.includes(`'rollout') print -rl -- 'watch:follow one: it'\\''s done when live' ;;`), zsh);
  const fish = fishScript(t);
  assert.ok(fish.includes("complete -c kiln -n '__fish_use_subcommand' -a deploy -d 'replace the fleet'"));
  assert.ok(fish.includes("complete -c kiln -n '__fish_seen_subcommand_from deploy' -l strategy -x -a 'rolling blue-green canary' -d 'rolling, blue-green or canary'"));
  assert.ok(fish.includes("complete -c kiln -n '__fish_seen_subcommand_from rollout; and not __fish_seen_subcommand_from watch' -a watch -d 'follow one: it\\'s done when live'"));
  assert.ok(fish.includes("complete -c kiln -s f -l file -r -F -d 'the kiln.yaml to use'"));
});

test("a verb's own short flag shadows the global one: after logs, -f is --follow (no value) and --file stays", () => {
  const p = new Command("kiln").option("-f, --file <path>", "the kiln.yaml to use");
  p.command("logs [instance]").description("logs").option("-f, --follow", "follow");
  const bash = bashScript(commandTree(p));
  assert.ok(bash.includes(`'logs') echo '-f --follow --file' ;;`), bash);
  assert.ok(!bash.includes(`'logs|-f')`));
  assert.ok(bash.includes(`'logs|--file') echo 'file' ;;`));
});
