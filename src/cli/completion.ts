// Shell completion for bash, zsh and fish, generated from the commander program itself, so it
// can never list a verb or flag that does not exist. The script is static: Tab answers from it
// at once. (A runtime scheme, where each Tab runs `kiln complete …`, would load every verb
// module per keypress: over a second of CPU here.) Regenerate it after upgrading kiln.

import type { Command, Option } from "commander";

export interface CompletionOption {
  /** "--strategy" */
  long?: string;
  /** "-f" */
  short?: string;
  description: string;
  takesValue: boolean;
  /** the value is a path: the shell completes file names */
  file: boolean;
  /** the closed set of values, when there is one */
  choices?: string[];
}

export interface CompletionNode {
  name: string;
  description: string;
  options: CompletionOption[];
  commands: CompletionNode[];
  /** the values of its first argument, when they are a closed set */
  argChoices?: string[];
}

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** Values of flags kiln checks itself (for "did you mean"), so commander does not know them as choices. */
const KNOWN_CHOICES: Record<string, string[]> = {
  "--strategy": ["rolling", "blue-green", "canary"],
  "--router": ["builtin", "haproxy"],
  "--provider": ["local", "docker", "swarm"],
  "--sandbox": ["auto", "bwrap", "none"],
};

/** Arguments kiln checks itself, by verb. */
const KNOWN_ARG_CHOICES: Record<string, string[]> = { completion: ["bash", "zsh", "fish"] };

function optionOf(o: Option): CompletionOption {
  const takesValue = o.required || o.optional;
  return {
    long: o.long,
    short: o.short,
    description: o.description,
    takesValue,
    file: takesValue && /<(path|file|dir|directory)>/.test(o.flags),
    choices: o.argChoices ?? (o.long ? KNOWN_CHOICES[o.long] : undefined),
  };
}

/** The data the scripts are generated from: verbs, their sub-verbs and options, hidden ones left out. */
export function commandTree(cmd: Command): CompletionNode {
  const help = cmd.createHelp();
  return {
    name: cmd.name(),
    description: cmd.description(),
    options: help.visibleOptions(cmd).filter((o) => o.long !== "--help").map(optionOf),
    commands: help.visibleCommands(cmd).filter((c) => c.name() !== "help").map(commandTree),
    argChoices: cmd.registeredArguments[0]?.argChoices ?? KNOWN_ARG_CHOICES[cmd.name()],
  };
}

interface Flat {
  /** "" for the program, "rollout watch" for a sub-verb */
  path: string;
  node: CompletionNode;
}

function flatten(n: CompletionNode, path = ""): Flat[] {
  return [{ path, node: n }, ...n.commands.flatMap((c) => flatten(c, path ? `${path} ${c.name}` : c.name))];
}

const flagsOf = (o: CompletionOption) => [o.short, o.long].filter((x): x is string => x !== undefined);
/** one line, so it fits a completion menu */
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
/** single-quoted for sh, zsh and fish alike ('' inside is closed, escaped, reopened; fish reads \' inside quotes) */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const fq = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

/**
 * The program's options apply after any verb too (commander reads them anywhere), less a flag
 * the verb uses for itself: after `logs`, `-f` is --follow (src/cli/args.ts) and --file stays.
 */
function optionsAt(root: CompletionNode, f: Flat): CompletionOption[] {
  if (f.path === "") return root.options;
  const own = new Set(f.node.options.flatMap(flagsOf));
  const globals = root.options.filter((o) => o.long !== "--version").map((o) => (o.short && own.has(o.short) ? { ...o, short: undefined } : o));
  return [...f.node.options, ...globals];
}

// bash and zsh share the walk: find the verb path in the words before the cursor (skipping
// options and the values of those that take one), then offer that path's sub-verbs or options,
// or the value of the option just before the cursor.
function caseTable(fn: string, entries: Array<[key: string, body: string]>): string {
  return [`${fn}() {`, `  case "$1" in`, ...entries.map(([k, body]) => `    ${sq(k)}) ${body} ;;`), "  esac", "}"].join("\n");
}

function shellTables(root: CompletionNode, style: "bash" | "zsh"): string {
  const flat = flatten(root);
  const words = (xs: string[]) => `echo ${sq(xs.join(" "))}`;
  const desc = (pairs: Array<[string, string]>) => `print -rl -- ${pairs.map(([n, d]) => sq(`${n.replace(/:/g, "\\:")}:${oneLine(d)}`)).join(" ")}`;
  // a verb's sub-verbs, or else the closed set of its argument's values
  const nexts = (n: CompletionNode): Array<[string, string]> => (n.commands.length ? n.commands.map((c) => [c.name, c.description]) : (n.argChoices ?? []).map((v) => [v, ""]));
  const subs = flat.filter((f) => nexts(f.node).length > 0).map((f): [string, string] => [f.path, style === "bash" ? words(nexts(f.node).map(([n]) => n)) : desc(nexts(f.node))]);
  const opts = flat.map((f): [string, string] => {
    const os = optionsAt(root, f);
    return [f.path, style === "bash" ? words(os.flatMap(flagsOf)) : desc(os.flatMap((o) => flagsOf(o).map((x): [string, string] => [x, o.description])))];
  });
  // "PATH FLAG" → "file" | "choice a b c" | "value" for every option that takes a value
  const valued: Array<[string, string]> = [];
  for (const f of flat) {
    for (const o of optionsAt(root, f)) {
      if (!o.takesValue) continue;
      const what = o.choices ? `choice ${o.choices.join(" ")}` : o.file ? "file" : "value";
      for (const flag of flagsOf(o)) valued.push([`${f.path}|${flag}`, `echo ${sq(what)}`]);
    }
  }
  return [caseTable(`_kiln_subs`, subs), caseTable(`_kiln_opts`, opts), caseTable(`_kiln_value`, valued)].join("\n");
}

/** bash: `source <(kiln completion bash)`, or save it in bash-completion's completions folder. */
export function bashScript(root: CompletionNode): string {
  return `# ${root.name} completion for bash: generated by \`${root.name} completion bash\` (regenerate after an upgrade)
${shellTables(root, "bash")}
_kiln() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" i w v
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ $w == -* ]]; then
      [[ -n $(_kiln_value "$path|$w") ]] && ((i++))
    elif [[ " $(_kiln_subs "$path") " == *" $w "* ]]; then
      path="\${path:+$path }$w"
    fi
  done
  ((COMP_CWORD > 1)) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  v="$(_kiln_value "$path|$prev")"
  case "$v" in
    file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    choice\\ *) COMPREPLY=($(compgen -W "\${v#choice }" -- "$cur")); return ;;
    value) COMPREPLY=(); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_kiln_opts "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_kiln_subs "$path")" -- "$cur"))
  fi
}
complete -o default -F _kiln ${root.name}
`;
}

/** zsh: `source <(kiln completion zsh)` after compinit, or save it as _kiln in a folder of $fpath. */
export function zshScript(root: CompletionNode): string {
  return `#compdef ${root.name}
# ${root.name} completion for zsh: generated by \`${root.name} completion zsh\` (regenerate after an upgrade)
${shellTables(root, "zsh")}
_kiln() {
  local path_="" i w v prev
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    if [[ $w == -* ]]; then
      [[ -n $(_kiln_value "$path_|$w") ]] && ((i++))
    elif _kiln_subs "$path_" | grep -q "^\${w}:"; then
      path_="\${path_:+$path_ }$w"
    fi
  done
  prev="\${words[CURRENT-1]}"
  v="$(_kiln_value "$path_|$prev")"
  case "$v" in
    file) _files; return ;;
    choice\\ *) compadd -- \${=v#choice }; return ;;
    value) return ;;
  esac
  local -a items
  if [[ $PREFIX == -* ]]; then
    items=("\${(@f)$(_kiln_opts "$path_")}")
    _describe -t options option items
  else
    items=("\${(@f)$(_kiln_subs "$path_")}")
    (( \${#items} )) && [[ -n \${items[1]} ]] && _describe -t commands command items
  fi
}
if (( $+functions[compdef] )); then compdef _kiln ${root.name}; fi
`;
}

/** fish: `kiln completion fish > ~/.config/fish/completions/kiln.fish`. */
export function fishScript(root: CompletionNode): string {
  const c = root.name;
  const lines = [`# ${c} completion for fish: generated by \`${c} completion fish\` (regenerate after an upgrade)`, `complete -c ${c} -f`];
  const option = (cond: string, o: CompletionOption) => {
    const parts = [`complete -c ${c}`];
    if (cond) parts.push(`-n ${fq(cond)}`);
    if (o.short) parts.push(`-s ${o.short.slice(1)}`);
    if (o.long) parts.push(`-l ${o.long.slice(2)}`);
    if (o.takesValue) parts.push(o.file ? "-r -F" : "-x"); // -x: a value, and not a file name
    if (o.choices) parts.push(`-a ${fq(o.choices.join(" "))}`);
    parts.push(`-d ${fq(oneLine(o.description))}`);
    return parts.join(" ");
  };
  for (const o of root.options) lines.push(option("", o));
  const walk = (n: CompletionNode, chain: string[]) => {
    const here = chain.length === 0 ? "__fish_use_subcommand" : `__fish_seen_subcommand_from ${chain[chain.length - 1]}`;
    const names = n.commands.map((x) => x.name);
    for (const sub of n.commands) {
      const cond = chain.length === 0 ? here : `${here}; and not __fish_seen_subcommand_from ${names.join(" ")}`;
      lines.push(`complete -c ${c} -n ${fq(cond)} -a ${sub.name} -d ${fq(oneLine(sub.description))}`);
    }
    for (const sub of n.commands) {
      if (sub.argChoices) lines.push(`complete -c ${c} -n ${fq(`__fish_seen_subcommand_from ${sub.name}`)} -a ${fq(sub.argChoices.join(" "))}`);
      for (const o of sub.options) lines.push(option(`__fish_seen_subcommand_from ${sub.name}`, o));
      walk(sub, [...chain, sub.name]);
    }
  };
  walk(root, []);
  return `${lines.join("\n")}\n`;
}

export function completionScript(shell: Shell, root: CompletionNode): string {
  return shell === "bash" ? bashScript(root) : shell === "zsh" ? zshScript(root) : fishScript(root);
}
