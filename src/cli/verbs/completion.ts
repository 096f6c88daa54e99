import type { Command } from "commander";
import { commandTree, completionScript, SHELLS, type Shell } from "../completion.js";
import { badChoice } from "../output.js";

export function register(program: Command): void {
  program
    .command("completion <shell>")
    .description("print the shell completion script for bash, zsh or fish (verbs, flags and flag values)")
    .addHelpText(
      "after",
      "\nThe script is generated from this kiln's verbs: regenerate it after an upgrade.\n\nExamples:\n  source <(kiln completion bash)                               # bash, this shell; add the line to ~/.bashrc to keep it\n  kiln completion zsh > \"${fpath[1]}/_kiln\"                   # zsh (then restart it, compinit loads _kiln)\n  kiln completion fish > ~/.config/fish/completions/kiln.fish  # fish",
    )
    .action((shell: string, _opts: unknown, cmd: Command) => {
      if (!(SHELLS as readonly string[]).includes(shell)) throw badChoice("shell", shell, SHELLS);
      // main loads every verb for this one (see planLoad in program.ts), so the tree is whole.
      process.stdout.write(completionScript(shell as Shell, commandTree(cmd.parent!)));
    });
}
