// Which commands are guaranteed to have succeeded before this one runs?
//
// A small abstract interpreter over the mvdan/sh syntax tree. It follows the script's
// control flow — sequences, `&&`/`||`, `!`, if/elif/else, while/until/for loops (to a
// fixed point), case, subshells, functions (analysed at each call), `set -e`/`set +e`,
// `set -o pipefail`, an ERR trap that exits, exit/return/break/continue — and carries one
// abstract state along every path:
//
//   h       what is known about the new capacity's health on this path:
//           "ok"      a health check succeeded, and its failure would not have reached here
//           "failed"  a health check failed on this path (so removals here are a rollback
//                     of the new capacity, not the classic mistake)
//           "unknown" anything else (the merge of "ok" and "failed" is "unknown")
//   errexit whether a failing command stops the script here (set -e, or an ERR trap that exits)
//   vars    what variables hold: the output of a health probe, or literal values each
//           tagged with h at the moment of assignment (for `healthy=1 … [ "$healthy" = 1 ]`)
//
// Every construct maps an incoming state to two outgoing ones: the state when it
// completes with status 0 and the state when it completes with a non-zero status (null
// when that cannot happen). `if`, `&&`, `||` and `!` route those two states; `set -e`
// drops the non-zero one. A removal (KR001) or traffic switch (KR002) is reported when it
// runs in a state whose h is "unknown". Worked examples:
//
//   set -e; aws elbv2 wait target-in-service …; aws ec2 terminate-instances …
//     wait: ok → h=ok; fail → dropped by set -e. terminate runs with h=ok: clean.
//   aws elbv2 wait target-in-service …; aws ec2 terminate-instances …        (no set -e)
//     terminate runs with merge(ok, failed) = unknown: KR001 (and KR003 on the wait).
//   if curl -fsS "$URL"; then echo up; fi; aws ec2 terminate-instances …
//     the if completes with merge(then: ok, no-branch: failed) = unknown: KR001.
//   if ! curl -fsS "$URL"; then exit 1; fi; aws ec2 terminate-instances …
//     the `then` path exits; only the path where curl succeeded continues: clean.
//   wait_healthy || { delete_green; exit 1; }; delete_blue
//     delete_green runs with h=failed (rollback of the new fleet): clean; delete_blue
//     runs with h=ok if wait_healthy only returns 0 after a successful check: clean.

import type { Pos, RawFinding } from "../types.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import {
  nodeType,
  OP,
  parseShell,
  pos as posOf,
  wordInfo,
  type ArithmCmd,
  type Assign,
  type BinaryCmd,
  type Block,
  type CallExpr,
  type CaseClause,
  type DeclClause,
  type File,
  type ForClause,
  type FuncDecl,
  type IfClause,
  type Stmt,
  type TestClause,
  type TestExpr,
  type TimeClause,
  type WhileClause,
  type Word,
  type WordInfo,
} from "./ast.js";
import { classify, type Classified, type Effect } from "./commands.js";
import { checkRemoteScript } from "./packages.js";
import { walkCalls, walkStmts } from "./walk.js";

type H = "ok" | "failed" | "unknown";

type VarFact = { kind: "probe" } | { kind: "values"; values: ReadonlyMap<string, H> };

interface State {
  h: H;
  errexit: boolean;
  pipefail: boolean;
  /** an unsafe removal was already reported on every path to here (one report per path) */
  flagged: boolean;
  /** after a traffic switch: "cut" until a soak (long sleep, approval) has passed */
  window: "none" | "cut" | "soaked";
  vars: ReadonlyMap<string, VarFact>;
  /** lines of health checks run on some path to here, for explaining a finding */
  seen: readonly number[];
  /**
   * every path merged into this state had a health verdict (h was "ok" or "failed" on each),
   * even if the merge is "unknown": the failure handler of `gate && retire_old || handler`
   * runs either after the gate failed or after it passed, and a removal there is safe both ways
   */
  gated: boolean;
  /** the latest steps on this path that matter to a finding (checks, set -e, calls), for --explain */
  trail: readonly string[];
}

interface Out {
  ok: State | null;
  fail: State | null;
}

interface Ctx {
  /** in a condition: errexit is ignored (if/while conditions, left of &&/||, after !) */
  cond: boolean;
  /** the statement's exit status is its caller's result (last statement of a function or subshell) */
  tail: boolean;
  depth: number;
  /** the innermost loop's break/continue states */
  loop?: { brk: State | null; cont: State | null };
  /** the current function's return states */
  func?: { ok: State | null; fail: State | null; positional: WordInfo[]; shift: number };
  /** the current subshell's (or remote script's) exit states */
  sub?: { ok: State | null; fail: State | null };
  /** function names on the call stack */
  stack: readonly string[];
  /** the line of the call into the current function, for messages */
  callLine?: number;
  /** where the call into the current function is */
  callAt?: Pos;
  /** findings inside a remote script are reported at the command that runs it */
  at?: Pos;
  /** the previous statement's outcome in this list: what `$?` is */
  prev?: Out;
}

const OK: Out = { ok: null, fail: null };

function merge(a: State | null, b: State | null): State | null {
  if (!a) return b;
  if (!b) return a;
  const vars = a.vars === b.vars ? a.vars : mergeVars(a.vars, b.vars);
  return {
    h: mergeH(a.h, b.h),
    errexit: a.errexit && b.errexit,
    pipefail: a.pipefail && b.pipefail,
    flagged: a.flagged && b.flagged,
    window: a.window === b.window ? a.window : a.window === "soaked" || b.window === "soaked" ? "soaked" : "none",
    vars,
    seen: a.seen === b.seen ? a.seen : addSeen(a.seen, ...b.seen),
    gated: a.gated && b.gated,
    // the explanation follows the path that makes a finding: the one without a passed check
    trail: a.trail === b.trail ? a.trail : rankH(b.h) > rankH(a.h) ? b.trail : a.trail,
  };
}

function mergeVars(av: ReadonlyMap<string, VarFact>, bv: ReadonlyMap<string, VarFact>): ReadonlyMap<string, VarFact> {
  const vars = new Map<string, VarFact>();
  for (const k of new Set([...av.keys(), ...bv.keys()])) {
    const x = av.get(k);
    const y = bv.get(k);
    if (x === y) vars.set(k, x!);
    else if (!x || !y) vars.set(k, { kind: "values", values: new Map([["?", "unknown"]]) });
    else if (x.kind === "probe" && y.kind === "probe") vars.set(k, x);
    else if (x.kind === "values" && y.kind === "values") {
      const m = new Map(x.values);
      for (const [v, h] of y.values) m.set(v, m.has(v) ? mergeH(m.get(v)!, h) : h);
      vars.set(k, { kind: "values", values: m });
    } else vars.set(k, { kind: "values", values: new Map([["?", "unknown"]]) });
  }
  return vars;
}

const mergeH = (a: H, b: H): H => (a === b ? a : "unknown");
const rankH = (h: H): number => (h === "unknown" ? 2 : h === "failed" ? 1 : 0);

/** A step on the path, kept to the last few. */
function step(s: State, line: number, what: string): State {
  const trail = [...s.trail, `line ${line}: ${what}`];
  return { ...s, trail: trail.length > 10 ? trail.slice(-10) : trail };
}

/** The latest few health-check lines, enough to explain a finding. */
function addSeen(seen: readonly number[], ...lines: number[]): number[] {
  if (lines.length === 0) return seen as number[];
  return [...new Set([...seen, ...lines])].sort((p, q) => p - q).slice(-3);
}

function sameState(a: State | null, b: State | null): boolean {
  if (!a || !b) return a === b;
  if (a.h !== b.h || a.errexit !== b.errexit || a.pipefail !== b.pipefail || a.flagged !== b.flagged || a.window !== b.window || a.gated !== b.gated) return false;
  if (a.seen.join() !== b.seen.join() || a.vars.size !== b.vars.size) return false;
  if (a.vars === b.vars) return true;
  for (const [k, x] of a.vars) {
    const y = b.vars.get(k);
    if (x === y) continue;
    if (!y || x.kind !== y.kind) return false;
    if (x.kind === "values" && y.kind === "values") {
      if (x.values.size !== y.values.size) return false;
      for (const [v, h] of x.values) if (y.values.get(v) !== h) return false;
    }
  }
  return true;
}

const with_ = (s: State, patch: Partial<State>): State => ({ ...s, ...patch, ...(patch.h !== undefined ? { gated: patch.h !== "unknown" } : {}) });

/**
 * The state a failure handler runs in. When its condition is a gate (its success means
 * healthy: `gate || handler`, `if ! gate; then handler`, `if gate; … else handler`), or
 * every path into it carried a health verdict, the handler runs because the new capacity
 * failed its check: what it removes is that failed new capacity (a rollback), even on the
 * path where a polling loop never got to run its probe.
 */
const handler = (s: State, gateOk: State | null | undefined): State => (s.h === "unknown" && (s.gated || gateOk?.h === "ok") ? with_(s, { h: "failed" }) : s);
const mergeOut = (o: Out): State | null => merge(o.ok, o.fail);

/**
 * The per-file cap on interpretation: a count of statements, not a clock, so that the same
 * file always gives the same answer. A generated 10,000-line deploy script needs about 33,000;
 * a file built to explode (functions calling each other in nested loops) stops here.
 */
export const MAX_STEPS = 500_000;

export class FlowBudgetExceeded extends Error {
  constructor(readonly at: Pos) {
    super(`control flow too complex to follow (more than ${MAX_STEPS} statements interpreted)`);
  }
}

export interface FlowResult {
  findings: RawFinding[];
  /** statements interpreted: what the budget counts */
  steps: number;
}

export interface FlowOptions {
  /** the text of the script, for the shebang */
  text: string;
}

export function analyzeFlow(file: File, opts: FlowOptions): FlowResult {
  return new Flow(file, opts).run();
}

class Flow {
  private readonly findings = new Map<string, RawFinding>();
  private readonly funcs = new Map<string, FuncDecl>();
  private readonly called = new Set<string>();
  private readonly trapped = new Set<string>();
  /** statements interpreted so far; past a budget, loops stop iterating towards a fixed point and widen */
  private steps = 0;

  /** names assigned exactly once in the file, to a literal: `KUBECTL="kubectl -n prod"`, `IMAGE=app:latest` */
  private readonly literals: ReadonlyMap<string, { text: string; pos: Pos }>;
  /** names assigned exactly once, to a value without command substitutions: `KUBECTL="kubectl -n ${NS}"` */
  private readonly commands: ReadonlyMap<string, { text: string; pos: Pos }>;
  /** `alias k='kubectl -n prod'` */
  private readonly aliases = new Map<string, string>();
  /** container names started with `docker run --name N`, by line */
  private readonly runs: { name: string; line: number }[] = [];
  /** the targets of each container removal, by line */
  private readonly removals: { targets: string[]; line: number }[] = [];

  constructor(
    private readonly file: File,
    private readonly opts: FlowOptions,
  ) {
    collectFuncs(file.Stmts, this.funcs);
    this.literals = collectLiterals(file.Stmts, true);
    this.commands = collectLiterals(file.Stmts, false);
    walkCalls(file.Stmts, (argv, st) => {
      if (argv[0] === "alias") {
        for (const a of argv.slice(1)) {
          const eq = a.indexOf("=");
          if (eq > 0) this.aliases.set(a.slice(0, eq), a.slice(eq + 1));
        }
      }
    });
    walkStmts(file.Stmts, (st) => {
      if (nodeType(st.Cmd) !== "CallExpr") return;
      const words = ((st.Cmd as unknown as CallExpr).Args ?? []).map(wordInfo);
      if (words.length === 0) return;
      const c = classify(this.expandHead(words));
      const line = posOf(st).line;
      if (c.container?.run) this.runs.push({ name: c.container.run, line });
      if (c.container?.removes) this.removals.push({ targets: c.container.removes, line });
    });
  }

  /** argv with a command held in a variable or an alias spelled out, and literal variables substituted. */
  private expandHead(argv: WordInfo[]): WordInfo[] {
    const head = argv[0]!;
    let out = argv;
    const alias = head.literal ? this.aliases.get(head.text) : undefined;
    const v = !head.literal && head.params.length === 1 && head.substs.length === 0 && head.text === `\${${head.params[0]}}` ? this.commands.get(head.params[0]!) : undefined;
    const spelled = alias ?? v?.text;
    if (spelled !== undefined && /^[A-Za-z0-9_./ =:"'{}$-]+$/.test(spelled) && !/^\s*(true|false)\s*$/.test(spelled)) {
      const words = spelled
        .trim()
        .split(/\s+/)
        .filter((w) => w !== "")
        .map((w) => {
          const text = w.replace(/^["']|["']$/g, "");
          const params = [...text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
          return { ...head, text, literal: params.length === 0, params, substs: [] };
        });
      if (words.length > 0) out = [...words, ...argv.slice(1)];
    }
    // A variable holding one literal is that literal (an image held in $IMAGE is still `:latest`);
    // findings about it point at the assignment, where the fix goes.
    return out.map((w, i) => {
      if (i === 0 || w.literal || w.substs.length > 0 || w.params.length !== 1 || w.text !== `\${${w.params[0]}}`) return w;
      const lit = this.literals.get(w.params[0]!);
      return lit ? { ...w, text: lit.text, literal: true, params: [], pos: lit.pos } : w;
    });
  }

  run(): FlowResult {
    const shebang = /^#!.*\b(bash|sh|zsh|ksh)\b(.*)$/m.exec(this.opts.text.split("\n", 1)[0] ?? "");
    const errexit = !!shebang && /(^|\s)-[a-z]*e/.test(shebang[2] ?? "");
    const init: State = { h: "unknown", errexit, pipefail: false, flagged: false, window: "none", vars: new Map(), seen: [], gated: false, trail: [] };
    // The last statement's status is the script's: CI sees it.
    const ctx: Ctx = { cond: false, tail: true, depth: 0, stack: [] };
    this.stmts(this.file.Stmts, init, ctx);
    // Functions never called here may be called by a dispatcher ("$@") or another script:
    // read them from a fresh state. Trap handlers run when something failed: a removal in
    // them is a rollback.
    for (const [name, fn] of [...this.funcs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (this.called.has(name)) continue;
      const start = this.trapped.has(name) ? with_(init, { h: "failed" }) : init;
      this.callFunction(name, fn, [], start, { ...ctx, stack: [name] });
    }
    return { findings: [...this.findings.values()], steps: this.steps };
  }

  private report(f: RawFinding, ctx: Ctx): void {
    const at = ctx.at ?? f.pos;
    const key = `${f.ruleId}@${at.line}:${at.col}`;
    if (!this.findings.has(key)) this.findings.set(key, { ...f, pos: at });
  }

  // --- statements ----------------------------------------------------------------------

  private stmts(list: Stmt[] | null, state: State | null, ctx: Ctx): Out {
    let out: Out = { ok: state, fail: null };
    const n = list?.length ?? 0;
    if (n === 0) return out;
    for (let i = 0; i < n; i++) {
      const s = mergeOut(out);
      if (!s) return OK;
      out = this.stmt(list![i]!, s, { ...ctx, tail: ctx.tail && i === n - 1, prev: i === 0 ? undefined : out });
    }
    return out;
  }

  private stmt(st: Stmt, state: State, ctx: Ctx): Out {
    if (++this.steps > MAX_STEPS) throw new FlowBudgetExceeded(posOf(st));
    if (st.Background) {
      // Started, not finished: nothing it checks is known when the next line runs.
      this.command(st, state, { ...ctx, cond: true });
      return { ok: state, fail: null };
    }
    if (st.Negated) {
      const o = this.command(st, state, { ...ctx, cond: true });
      return { ok: o.fail, fail: o.ok };
    }
    return this.command(st, state, ctx);
  }

  private command(st: Stmt, state: State, ctx: Ctx): Out {
    const cmd = st.Cmd;
    if (!cmd) return { ok: state, fail: null };
    switch (nodeType(cmd)) {
      case "CallExpr":
        return this.call(cmd as unknown as CallExpr, st, state, ctx);
      case "BinaryCmd":
        return this.binary(cmd as unknown as BinaryCmd, st, state, ctx);
      case "IfClause":
        return this.ifClause(cmd as unknown as IfClause, state, ctx);
      case "WhileClause":
        return this.whileClause(cmd as unknown as WhileClause, state, ctx);
      case "ForClause":
        return this.forClause(cmd as unknown as ForClause, state, ctx);
      case "Block":
        return this.stmts((cmd as unknown as Block).Stmts, state, ctx);
      case "Subshell":
        return this.subshell((cmd as unknown as Block).Stmts, state, ctx, st);
      case "CaseClause":
        return this.caseClause(cmd as unknown as CaseClause, state, ctx);
      case "FuncDecl":
        return { ok: state, fail: null };
      case "TestClause":
        return this.errexit(this.testClause(cmd as unknown as TestClause, state, ctx), ctx);
      case "ArithmCmd":
        return this.errexit(this.arithm(cmd as unknown as ArithmCmd, state, ctx), ctx);
      case "DeclClause":
        return this.decl(cmd as unknown as DeclClause, state, ctx);
      case "TimeClause": {
        const inner = (cmd as unknown as TimeClause).Stmt;
        return inner ? this.stmt(inner, state, ctx) : { ok: state, fail: null };
      }
      default:
        return { ok: state, fail: state };
    }
  }

  /** Under set -e (outside a condition) a non-zero status ends the script. */
  private errexit(o: Out, ctx: Ctx): Out {
    if (ctx.cond || !o.fail || !o.fail.errexit) return o;
    return { ok: o.ok, fail: null };
  }

  private binary(b: BinaryCmd, st: Stmt, state: State, ctx: Ctx): Out {
    if (b.Op === OP.and) {
      const x = this.stmt(b.X, state, { ...ctx, cond: true, tail: false });
      // on the right, $? is the left side's (0 after &&, non-zero after ||)
      const y = x.ok ? this.stmt(b.Y, x.ok, { ...ctx, prev: { ok: x.ok, fail: null } }) : OK;
      return { ok: y.ok, fail: merge(x.fail, y.fail) };
    }
    if (b.Op === OP.or) {
      const x = this.stmt(b.X, state, { ...ctx, cond: true, tail: false });
      const y = x.fail ? this.stmt(b.Y, handler(x.fail, x.ok), { ...ctx, prev: { ok: null, fail: x.fail } }) : OK;
      return { ok: merge(x.ok, y.ok), fail: y.fail };
    }
    if (b.Op === OP.pipe || b.Op === OP.pipeAll) return this.pipeline(st, state, ctx);
    return { ok: state, fail: state };
  }

  private pipeline(st: Stmt, state: State, ctx: Ctx): Out {
    const parts = flattenPipe(st);
    // Each part runs in its own subshell, all from the same state.
    const outs = parts.map((p) => this.stmt(p, state, { ...ctx, cond: true, tail: false }));
    const last = outs[outs.length - 1]!;
    const effects = parts.map((p) => this.effectOf(p));
    let okH: H | undefined;
    const lastEffect = effects[effects.length - 1];
    // `probe | grep -q healthy`: the filter's status is the probe's verdict.
    if (lastEffect === "filter" && effects.slice(0, -1).some((e) => e === "probe" || e === "health")) okH = "ok";
    if (state.pipefail && outs.some((o) => o.ok?.h === "ok" && state.h !== "ok")) okH = "ok";
    let ok = last.ok ? with_(last.ok, { h: okH ?? last.ok.h }) : null;
    let fail = last.fail;
    if (okH === "ok" && ok) ok = with_(ok, { seen: addSeen(ok.seen, posOf(st).line) });
    if (okH === "ok" && fail && fail.h === state.h) fail = with_(fail, { h: "failed" });
    const out = this.errexit({ ok, fail }, ctx);
    this.checkIgnored(st, state, out, ctx);
    return out;
  }

  private effectOf(st: Stmt): Effect | "compound" {
    if (st.Negated || nodeType(st.Cmd) !== "CallExpr") return "compound";
    const ce = st.Cmd as unknown as CallExpr;
    const argv = (ce.Args ?? []).map(wordInfo);
    if (argv.length === 0 || this.funcs.has(argv[0]!.text)) return "compound";
    return classify(argv).effect;
  }

  private ifClause(c: IfClause, state: State, ctx: Ctx): Out {
    const cond = this.stmts(c.Cond, state, { ...ctx, cond: true, tail: false });
    const then = cond.ok ? this.stmts(c.Then, cond.fail?.h === "ok" ? handler(cond.ok, cond.fail) : cond.ok, ctx) : OK;
    let els: Out;
    if (!cond.fail) els = OK;
    else if (!c.Else) els = { ok: cond.fail, fail: null };
    else if ((c.Else.Cond?.length ?? 0) > 0) els = this.ifClause(c.Else, cond.fail, ctx);
    else els = this.stmts(c.Else.Then, handler(cond.fail, cond.ok), ctx);
    return { ok: merge(then.ok, els.ok), fail: merge(then.fail, els.fail) };
  }

  private whileClause(w: WhileClause, state: State, ctx: Ctx): Out {
    let head: State = state;
    let exit: State | null = null;
    for (let iter = 0; iter < this.maxIterations(); iter++) {
      const loop = { brk: null as State | null, cont: null as State | null };
      const c = this.stmts(w.Cond, head, { ...ctx, cond: true, tail: false });
      const [bodyIn, out] = w.Until ? [c.fail, c.ok] : [c.ok, c.fail];
      const body = bodyIn ? this.stmts(w.Do, bodyIn, { ...ctx, loop, tail: false }) : OK;
      exit = merge(out, loop.brk);
      const next = merge(state, merge(mergeOut(body), loop.cont))!;
      if (sameState(next, head)) break;
      head = iter >= this.maxIterations() - 2 ? widen(next) : next;
    }
    return { ok: exit, fail: exit };
  }

  private maxIterations(): number {
    return this.steps > 100_000 ? 2 : 8;
  }

  private forClause(f: ForClause, state: State, ctx: Ctx): Out {
    // The iteration words' command substitutions run once, first.
    const loopWords = forWords(f);
    let s: State | null = state;
    for (const w of loopWords) s = s ? this.substs(wordInfo(w), s, ctx).after : s;
    if (!s) return OK;
    // A retry loop over a literal range (`for i in $(seq 1 30)`, `{1..30}`, `for ((…))`) runs at
    // least once, so when it runs out, the last iteration's state is what follows it.
    const atLeastOnce = isCStyle(f) || (loopWords.length > 0 && loopWords.every((w) => { const i = wordInfo(w); return i.literal || i.substs.length > 0; }));
    // `for i in {1..30}; do check && break; [ "$i" -eq 30 ] && exit 1; sleep 2; done`: the last
    // iteration exits, so the loop is left only through break (after a passed check).
    const lastExits = atLeastOnce && exitsOnCounter(f, this.funcs);
    let head: State = s;
    let exit: State | null = null;
    for (let iter = 0; iter < this.maxIterations(); iter++) {
      const loop = { brk: null as State | null, cont: null as State | null };
      const body = this.stmts(f.Do, head, { ...ctx, loop, tail: false });
      const end = merge(mergeOut(body), loop.cont);
      exit = lastExits ? loop.brk : merge(atLeastOnce ? end : merge(head, end), loop.brk);
      const next = merge(s, end)!;
      if (sameState(next, head)) break;
      head = iter >= this.maxIterations() - 2 ? widen(next) : next;
    }
    return { ok: exit, fail: exit };
  }

  private caseClause(c: CaseClause, state: State, ctx: Ctx): Out {
    const s = this.substs(wordInfo(c.Word), state, ctx).after;
    if (!s) return OK;
    let out: Out = { ok: null, fail: null };
    let hasDefault = false;
    for (const item of c.Items ?? []) {
      if ((item.Patterns ?? []).some((p) => wordInfo(p).text === "*")) hasDefault = true;
      const o = this.stmts(item.Stmts, s, ctx);
      out = { ok: merge(out.ok, o.ok), fail: merge(out.fail, o.fail) };
    }
    if (!hasDefault) out = { ok: merge(out.ok, s), fail: out.fail };
    return out;
  }

  private subshell(list: Stmt[] | null, state: State, ctx: Ctx, st: Stmt): Out {
    const sub = { ok: null as State | null, fail: null as State | null };
    const o = this.stmts(list, state, { ...ctx, sub, tail: true, loop: undefined });
    const out = this.errexit({ ok: merge(o.ok, sub.ok), fail: merge(o.fail, sub.fail) }, ctx);
    this.checkIgnored(st, state, out, ctx);
    return out;
  }

  // --- simple commands -------------------------------------------------------------------

  /** Runs the command substitutions in a word; `status` is the last one's, when there is one. */
  private substs(w: WordInfo, state: State, ctx: Ctx): { after: State | null; status?: Out; probe: boolean } {
    let s: State | null = state;
    let status: Out | undefined;
    let probe = false;
    for (const list of w.substs) {
      if (!s) break;
      // Command substitutions do not inherit set -e in bash.
      const sub = { ok: null as State | null, fail: null as State | null };
      const o = this.stmts(list, with_(s, { errexit: false }), { ...ctx, cond: false, tail: true, sub, loop: undefined });
      const ok = merge(o.ok, sub.ok);
      const fail = merge(o.fail, sub.fail);
      const restore = (x: State | null) => (x ? with_(x, { errexit: s!.errexit }) : null);
      status = { ok: restore(ok), fail: restore(fail) };
      s = merge(status.ok, status.fail);
      if (list.some((st) => this.stmtProbes(st))) probe = true;
    }
    return { after: s, status, probe };
  }

  /** Does this statement print the state of the new capacity (a probe, or a pipeline from one)? */
  private stmtProbes(st: Stmt): boolean {
    if (nodeType(st.Cmd) === "BinaryCmd") {
      const b = st.Cmd as unknown as BinaryCmd;
      if (b.Op === OP.pipe || b.Op === OP.pipeAll) return flattenPipe(st).some((p) => this.stmtProbes(p));
      return false;
    }
    const e = this.effectOf(st);
    return e === "probe" || e === "health";
  }

  private assignFact(value: Word | null, state: State, probe: boolean): VarFact {
    if (probe) return { kind: "probe" };
    if (!value) return { kind: "values", values: new Map([["", state.h]]) };
    const w = wordInfo(value);
    if (w.literal) return { kind: "values", values: new Map([[w.text, state.h]]) };
    // `x=$y` copies what is known about y
    if (w.params.length === 1 && w.text === `\${${w.params[0]}}`) {
      const f = state.vars.get(w.params[0]!);
      if (f) return f;
    }
    return { kind: "values", values: new Map([["?", state.h]]) };
  }

  private assign(as: Assign[] | null, state: State, ctx: Ctx, masks: boolean): Out {
    let s: State | null = state;
    let status: Out | undefined;
    for (const a of as ?? []) {
      if (!s) break;
      const name = a.Name?.Value ?? "";
      let probe = false;
      if (a.Value) {
        const w = wordInfo(a.Value);
        const r = this.substs(w, s, ctx);
        probe = r.probe;
        if (r.status) status = r.status;
        s = r.after;
        if (!s) break;
        if (isSecretName(name) && w.literal && looksLikeLiteralSecret(w.text)) {
          this.report({ ruleId: "KR062", pos: w.pos, message: `${name} is assigned a literal secret in the script` }, ctx);
        }
      }
      for (const el of a.Array?.Elems ?? []) if (el.Value && s) s = this.substs(wordInfo(el.Value), s, ctx).after;
      if (!s) break;
      const fact = this.assignFact(a.Value, s, probe);
      const vars = new Map(s.vars);
      vars.set(name, fact);
      s = with_(s, { vars });
      if (status) {
        const setVar = (x: State | null) => (x ? with_(x, { vars: new Map(x.vars).set(name, this.assignFact(a.Value, x, probe)) }) : null);
        status = { ok: setVar(status.ok), fail: setVar(status.fail) };
      }
    }
    if (!s) return OK;
    // `local x=$(cmd)` has the status of `local`, always 0; `x=$(cmd)` has cmd's.
    if (masks || !status) return { ok: s, fail: null };
    return status;
  }

  private decl(d: DeclClause, state: State, ctx: Ctx): Out {
    return this.assign(d.Args, state, ctx, true);
  }

  private call(ce: CallExpr, st: Stmt, state: State, ctx: Ctx): Out {
    const args = ce.Args ?? [];
    if (args.length === 0) return this.errexit(this.assign(ce.Assigns, state, ctx, false), ctx);
    let s: State | null = state;
    for (const a of ce.Assigns ?? []) {
      const w = a.Value ? wordInfo(a.Value) : undefined;
      if (w && isSecretName(a.Name?.Value ?? "") && w.literal && looksLikeLiteralSecret(w.text)) {
        this.report({ ruleId: "KR062", pos: w.pos, message: `${a.Name?.Value} is given a literal secret in the script` }, ctx);
      }
    }
    const argv = args.map(wordInfo);
    for (const w of argv) s = s ? this.substs(w, s, ctx).after : s;
    if (!s) return OK;
    const out = this.simple(argv, st, s, ctx);
    this.checkIgnored(st, s, out, ctx);
    return out;
  }

  /** KR003: a health check run as a plain statement whose failure nothing acts on. */
  private checkIgnored(st: Stmt, before: State, out: Out, ctx: Ctx): void {
    if (ctx.cond || ctx.tail || before.errexit || before.h === "ok") return;
    if (out.ok?.h === "ok" && out.fail && out.fail.h !== "ok") {
      this.report(
        {
          ruleId: "KR003",
          pos: posOf(st),
          message: "this health check's exit status is never checked: when it fails the script carries on (no set -e, no `|| exit`, no `if`)",
        },
        ctx,
      );
    }
  }

  private simple(argv: WordInfo[], st: Stmt, state: State, ctx: Ctx): Out {
    const name = argv[0]!.text;
    const rest = argv.slice(1);
    switch (name) {
      case "exit": {
        if (ctx.sub) this.exitTo(ctx.sub, rest[0]?.text, state, ctx.prev);
        return OK;
      }
      case "return": {
        // a subshell entered inside the function is left first (callFunction clears `sub`)
        const target = ctx.sub ?? ctx.func;
        if (target) this.exitTo(target, rest[0]?.text, state, ctx.prev);
        return OK;
      }
      case "break":
        if (ctx.loop) ctx.loop.brk = merge(ctx.loop.brk, state);
        return OK;
      case "continue":
        if (ctx.loop) ctx.loop.cont = merge(ctx.loop.cont, state);
        return OK;
      case "true":
      case ":":
        return { ok: state, fail: null };
      case "false":
        return this.errexit({ ok: null, fail: state }, ctx);
      case "set": {
        const next = this.setOptions(rest, state);
        return { ok: next.errexit !== state.errexit ? step(next, (ctx.at ?? posOf(st)).line, next.errexit ? "set -e: a failing command stops the script from here" : "set +e: failing commands no longer stop the script") : next, fail: null };
      }
      case "shift":
        if (ctx.func) ctx.func.shift += Number(rest[0]?.text ?? "1") || 1;
        return { ok: state, fail: null };
      case "trap":
        return { ok: this.trap(rest, state), fail: null };
      case "[":
      case "test":
        return this.errexit(this.testWords(name === "[" ? rest.slice(0, -1) : rest, state, ctx), ctx);
      case "wait":
      case "source":
      case ".":
      case "eval":
        return this.errexit({ ok: state, fail: state }, ctx);
    }
    // "$@" / "${@:2}": a wrapper function (retry, with_timeout) runs its arguments.
    if (argv[0]!.params.includes("@") && ctx.func) {
      const words = ctx.func.positional.slice(ctx.func.shift);
      let i = 0;
      while (i < words.length && (/^\d+[smh]?$/.test(words[i]!.text) || words[i]!.text.startsWith("-"))) i++;
      return words.length > i ? this.simple(words.slice(i), st, state, ctx) : { ok: state, fail: state };
    }
    const head = this.expandHead(argv);
    if (head !== argv && (head.length !== argv.length || head.some((w, i) => w.text !== argv[i]!.text))) {
      if (head[0]!.text !== name && ctx.depth < 12) return this.simple(head, st, state, { ...ctx, depth: ctx.depth + 1 });
    }
    // `$healthy` run as a command: true/false flags
    if (!argv[0]!.literal && argv[0]!.params.length === 1 && argv[0]!.text === `\${${argv[0]!.params[0]}}`) {
      const f = state.vars.get(argv[0]!.params[0]!);
      if (f?.kind === "values") {
        const okH = valuesH(f.values, (v) => v === "true");
        return this.errexit({ ok: okH ? with_(state, { h: okH }) : state, fail: state }, ctx);
      }
    }
    // A wrapper (`k() { kubectl --context "$CTX" "$@"; }`) runs its arguments as part of its own command.
    if (ctx.func && argv.some((w) => isPositional(w))) {
      const pos = ctx.func.positional.slice(ctx.func.shift);
      const expanded = argv.flatMap((w) => {
        if (!isPositional(w)) return [w];
        const p = w.params[0]!;
        if (p === "@" || p === "*") return pos;
        const at = pos[Number(p) - 1];
        return at ? [at] : [];
      });
      // what it does is named at the call, so that is where a finding goes
      const whole = argv.some((w) => w.params[0] === "@" || w.params[0] === "*");
      if (expanded.length > 0 && !isPositional(argv[0]!)) return this.simple(expanded, st, state, { ...ctx, at: whole ? (ctx.at ?? ctx.callAt) : ctx.at, func: { ...ctx.func, positional: [], shift: 0 } });
    }
    const fn = this.funcs.get(name);
    if (fn) {
      this.called.add(name);
      if (ctx.stack.includes(name) || ctx.depth > 12) return this.errexit({ ok: state, fail: state }, ctx);
      const o = this.callFunction(name, fn, rest, step(state, (ctx.at ?? posOf(st)).line, `calls ${name}()`), { ...ctx, callLine: posOf(st).line, callAt: ctx.at ?? posOf(st) });
      return this.errexit(o, ctx);
    }
    // `|| die "…"` with die defined in a sourced library: the conventional names exit.
    if (!fn && DIES.test(base(head[0]!.text))) {
      if (ctx.sub) this.exitTo(ctx.sub, "1", state, ctx.prev);
      return OK;
    }
    const c = classify(head);
    for (const f of c.findings) this.report(f, ctx);
    return this.errexit(this.effect(c, st, state, ctx), ctx);
  }

  private callFunction(name: string, fn: FuncDecl, args: WordInfo[], state: State, ctx: Ctx): Out {
    const func = { ok: null as State | null, fail: null as State | null, positional: args, shift: 0 };
    // Called in a condition, bash ignores set -e inside the whole function: ctx.cond carries over.
    const o = this.stmt(fn.Body, state, { ...ctx, func, tail: true, loop: undefined, sub: undefined, depth: ctx.depth + 1, stack: [...ctx.stack, name] });
    return { ok: merge(o.ok, func.ok), fail: merge(o.fail, func.fail) };
  }

  private exitTo(target: { ok: State | null; fail: State | null }, code: string | undefined, state: State, prev: Out | undefined): void {
    if (code === "0") target.ok = merge(target.ok, state);
    else if (code !== undefined && /^\d+$/.test(code)) target.fail = merge(target.fail, state);
    else if ((code === undefined || code === "${?}") && prev) {
      // `return` / `return $?`: the previous statement's status, split as it was
      target.ok = merge(target.ok, prev.ok);
      target.fail = merge(target.fail, prev.fail);
    } else {
      target.ok = merge(target.ok, state);
      target.fail = merge(target.fail, state);
    }
  }

  private effect(c: Classified, st: Stmt, state: State, ctx: Ctx): Out {
    const here = posOf(st);
    if (c.inner) return this.inner(c, st, state, ctx);
    switch (c.effect) {
      case "remove":
      {
        const next = this.removal(c, here, state, ctx);
        return { ok: next, fail: next };
      }
      case "cutover": {
        if (state.h === "unknown") {
          this.report(
            {
              ruleId: "KR002",
              pos: here,
              message: `\`${c.name}\` switches traffic, but no health check of the new fleet is guaranteed to have passed before it${this.why(state, ctx)}`,
              trace: this.trace(state, ctx.at ?? here, `\`${c.name}\` switches traffic while no passed health check is guaranteed on this path`),
            },
            ctx,
          );
        }
        const next = with_(state, { window: state.h === "failed" ? state.window : "cut" });
        return { ok: next, fail: next };
      }
      case "soak": {
        const next = state.window === "cut" ? with_(state, { window: "soaked" }) : state;
        return { ok: next, fail: next };
      }
      case "health": {
        const seen = addSeen(state.seen, here.line);
        return {
          ok: step(with_(state, { h: "ok", seen }), (ctx.at ?? here).line, `\`${c.name}\` passes`),
          fail: step(with_(state, { h: "failed", seen }), (ctx.at ?? here).line, `\`${c.name}\` fails${state.errexit && !ctx.cond ? " (set -e stops the script)" : ""}`),
        };
      }
      case "enter":
        this.report({ ruleId: "KR043", pos: here, message: `\`${c.name}\` enters a running instance from the deploy script` }, ctx);
        return { ok: state, fail: state };
      case "configure":
        this.report({ ruleId: "KR033", pos: here, message: `\`${c.name}\` configures running instances after they were deployed` }, ctx);
        return { ok: state, fail: state };
      default:
        return { ok: state, fail: state };
    }
  }

  /**
   * Clearing the slot the new container is about to take is not removing serving capacity:
   * `docker rm -f web-green; docker run --name web-green …; <gate>; docker stop web-blue`.
   * It is a slot when the same name is started later and a different container is removed
   * after that start (the old one, retired once the new one runs). In a stop-first swap
   * (`docker stop web; docker run --name web`) nothing else is removed: that is the mistake.
   */
  private clearsSlot(c: Classified, here: Pos): boolean {
    const targets = c.container?.removes ?? [];
    if (targets.length === 0) return false;
    return targets.every((t) => {
      const run = this.runs.find((r) => r.name === t && r.line > here.line);
      return !!run && this.removals.some((r) => r.line > run.line && r.targets.some((x) => x !== t));
    });
  }

  private removal(c: Classified, here: Pos, state: State, ctx: Ctx): State {
    if (state.h === "unknown" && !state.flagged && !this.clearsSlot(c, here)) {
      this.report(
        {
          ruleId: "KR001",
          pos: here,
          message: `\`${c.name}\` removes capacity, but no health check of the new capacity is guaranteed to have passed before it${this.why(state, ctx)}`,
          trace: this.trace(state, ctx.at ?? here, `\`${c.name}\` removes capacity while no passed health check is guaranteed on this path`),
        },
        ctx,
      );
      return with_(state, { flagged: true });
    }
    if (state.h === "ok" && state.window === "cut") {
      this.report(
        {
          ruleId: "KR019",
          pos: here,
          message: `\`${c.name}\` removes the previous fleet right after traffic was switched: there is no window in which rolling back is just switching back`,
        },
        ctx,
      );
    }
    return state;
  }

  private trace(state: State, here: Pos, last: string): string[] {
    const start = state.trail.length === 0 ? ["start: no health check has run on this path"] : [];
    return [...start, ...state.trail, `line ${here.line}: ${last}${state.errexit ? "" : " (set -e is off here)"}`];
  }

  private why(state: State, ctx: Ctx): string {
    const from = ctx.callLine !== undefined ? ` (reached from the call at line ${ctx.callLine})` : "";
    if (state.seen.length === 0) return `: nothing checks the new capacity's health before this line${from}`;
    const lines = state.seen.join(", ");
    return `: the health check at line${state.seen.length > 1 ? "s" : ""} ${lines} does not stop the script when it fails${from}`;
  }

  /** ssh/exec/SSM/bash -c: the inner script runs like a subshell, reported at this command. */
  private inner(c: Classified, st: Stmt, state: State, ctx: Ctx): Out {
    const here = ctx.at ?? posOf(st);
    const parsed = parseShell(c.inner!.text, "inner");
    if ("error" in parsed) {
      if (c.inner!.remote) this.report({ ruleId: "KR043", pos: here, message: `\`${c.name}\` runs commands inside a running instance` }, ctx);
      return { ok: state, fail: state };
    }
    if (c.inner!.remote) {
      const installs = checkRemoteScript(parsed.file);
      if (installs.length > 0) {
        this.report({ ruleId: "KR033", pos: here, message: `\`${c.name}\` ${installs[0]} on running instances after they were deployed` }, ctx);
      } else if (!(c.name === "ssh" && onlyContainerLifecycle(parsed.file))) {
        // ssh to a container host to start, stop or check containers is how the container
        // (the instance) is replaced, not a change to it.
        this.report({ ruleId: "KR043", pos: here, message: `\`${c.name}\` runs commands inside a running instance (${oneLine(c.inner!.text)})` }, ctx);
      }
    }
    const sub = { ok: null as State | null, fail: null as State | null };
    const start = c.inner!.remote ? with_(state, { errexit: false, pipefail: false }) : state;
    const o = this.stmts(parsed.file.Stmts, start, { ...ctx, at: here, sub, tail: true, loop: undefined, func: undefined });
    const restore = (x: State | null) => (x ? with_(x, { errexit: state.errexit, pipefail: state.pipefail }) : null);
    return { ok: restore(merge(o.ok, sub.ok)), fail: restore(merge(o.fail, sub.fail)) };
  }

  private setOptions(args: WordInfo[], state: State): State {
    let s = state;
    for (let i = 0; i < args.length; i++) {
      const t = args[i]!.text;
      const m = /^([-+])([a-zA-Z]+)$/.exec(t);
      if (!m) continue;
      const on = m[1] === "-";
      if (m[2]!.includes("e")) s = with_(s, { errexit: on });
      if (m[2]!.includes("o")) {
        const o = args[++i]?.text;
        if (o === "errexit") s = with_(s, { errexit: on });
        if (o === "pipefail") s = with_(s, { pipefail: on });
      }
    }
    return s;
  }

  /** `trap 'echo failed; exit 1' ERR` stops the script on a failing command, like set -e. */
  private trap(args: WordInfo[], state: State): State {
    if (args.length < 2 || !args.slice(1).some((a) => a.text === "ERR")) {
      for (const a of args.slice(1)) if (a.text === "EXIT" || a.text === "INT" || a.text === "TERM") this.noteTrap(args[0]?.text ?? "");
      return state;
    }
    const handler = args[0]!.text;
    this.noteTrap(handler);
    if (handler === "-" || handler === "") return state;
    return this.handlerExits(handler) ? with_(state, { errexit: true }) : state;
  }

  private noteTrap(handler: string): void {
    const parsed = parseShell(handler, "trap");
    if ("error" in parsed) return;
    walkCalls(parsed.file.Stmts, (argv) => {
      if (this.funcs.has(argv[0] ?? "")) this.trapped.add(argv[0]!);
    });
  }

  private handlerExits(handler: string, depth = 0): boolean {
    const parsed = parseShell(handler, "trap");
    if ("error" in parsed || depth > 4) return false;
    let exits = false;
    walkCalls(parsed.file.Stmts, (argv) => {
      if (argv[0] === "exit") exits = true;
      const fn = this.funcs.get(argv[0] ?? "");
      if (fn) walkCalls([fn.Body], (inner) => {
        if (inner[0] === "exit") exits = true;
      });
    });
    return exits;
  }

  // --- tests -------------------------------------------------------------------------------

  private operand(w: WordInfo, state: State, ctx: Ctx): { kind: "probe" } | { kind: "values"; values: ReadonlyMap<string, H> } | { kind: "lit"; text: string } | { kind: "other" } {
    if (w.substs.length > 0) {
      const r = this.substs(w, state, ctx);
      if (r.probe) return { kind: "probe" };
      return { kind: "other" };
    }
    if (w.literal) return { kind: "lit", text: w.text };
    if (w.params.length === 1 && w.text === `\${${w.params[0]}}`) {
      const f = state.vars.get(w.params[0]!);
      if (f) return f;
    }
    return { kind: "other" };
  }

  private compare(a: WordInfo, op: "eq" | "ne", b: WordInfo, state: State, ctx: Ctx): Out {
    const x = this.operand(a, state, ctx);
    const y = this.operand(b, state, ctx);
    let eqH: H | undefined;
    let neH: H | undefined;
    const probeVs = (p: typeof x, q: typeof y) => p.kind === "probe" && (q.kind !== "lit" || HEALTHY.test(q.text));
    if (probeVs(x, y) || probeVs(y, x)) {
      // the probe says healthy, or it says something else: known not healthy (yet)
      eqH = "ok";
      neH = "failed";
    } else if (x.kind === "values" && y.kind === "lit") eqH = valuesH(x.values, (v) => v === y.text);
    else if (y.kind === "values" && x.kind === "lit") eqH = valuesH(y.values, (v) => v === x.text);
    const eq = eqH ? with_(state, { h: eqH }) : state;
    const ne = neH ? with_(state, { h: neH }) : state;
    return op === "eq" ? { ok: eq, fail: ne } : { ok: ne, fail: eq };
  }

  private nonEmpty(w: WordInfo, negate: boolean, state: State, ctx: Ctx): Out {
    const x = this.operand(w, state, ctx);
    let h: H | undefined;
    if (x.kind === "values") h = valuesH(x.values, (v) => v !== "" && v !== "0");
    const yes = h ? with_(state, { h }) : state;
    return negate ? { ok: state, fail: yes } : { ok: yes, fail: state };
  }

  private testWords(ws: WordInfo[], state: State, ctx: Ctx): Out {
    if (ws[0]?.text === "!" && ws.length > 1) {
      const o = this.testWords(ws.slice(1), state, ctx);
      return { ok: o.fail, fail: o.ok };
    }
    if (ws.length === 3) {
      const op = ws[1]!.text;
      if (op === "=" || op === "==" || op === "-eq") return this.compare(ws[0]!, "eq", ws[2]!, state, ctx);
      if (op === "!=" || op === "-ne") return this.compare(ws[0]!, "ne", ws[2]!, state, ctx);
    }
    if (ws.length === 2 && (ws[0]!.text === "-n" || ws[0]!.text === "-z")) return this.nonEmpty(ws[1]!, ws[0]!.text === "-z", state, ctx);
    if (ws.length === 1) return this.nonEmpty(ws[0]!, false, state, ctx);
    for (const w of ws) this.substs(w, state, ctx);
    return { ok: state, fail: state };
  }

  private testClause(t: TestClause, state: State, ctx: Ctx): Out {
    return this.testExpr(t.X, state, ctx);
  }

  private testExpr(x: TestExpr, state: State, ctx: Ctx): Out {
    const type = nodeType(x);
    if (type === "Word") return this.nonEmpty(wordInfo(x as unknown as Word), false, state, ctx);
    if (type === "ParenTest") return this.testExpr(x.X!, state, ctx);
    if (type === "UnaryTest" && (x.Op === OP.testNonEmpty || x.Op === OP.testEmpty) && nodeType(x.X) === "Word") {
      return this.nonEmpty(wordInfo(x.X as unknown as Word), x.Op === OP.testEmpty, state, ctx);
    }
    if (type === "UnaryTest" && nodeType(x.X) !== "Word") {
      // `[[ ! … ]]`
      const o = this.testExpr(x.X!, state, ctx);
      return { ok: o.fail, fail: o.ok };
    }
    if (type === "BinaryTest" && nodeType(x.X) === "Word" && nodeType(x.Y) === "Word") {
      const a = wordInfo(x.X as unknown as Word);
      const b = wordInfo(x.Y as unknown as Word);
      if (x.Op === OP.testEq || x.Op === OP.testMatchShort || x.Op === OP.testNumEq) return this.compare(a, "eq", b, state, ctx);
      if (x.Op === OP.testNe || x.Op === OP.testNumNe) return this.compare(a, "ne", b, state, ctx);
    }
    return { ok: state, fail: state };
  }

  private arithm(a: ArithmCmd, state: State, ctx: Ctx): Out {
    const x = a.X;
    const asWord = (n: unknown): WordInfo | undefined => {
      if (nodeType(n) !== "Word") return undefined;
      const w = wordInfo(n as Word);
      // In arithmetic a bare name is a variable.
      if (w.literal && /^[A-Za-z_][A-Za-z0-9_]*$/.test(w.text)) return { ...w, literal: false, params: [w.text], text: `\${${w.text}}` };
      return w;
    };
    if (nodeType(x) === "Word") {
      const w = asWord(x);
      return w ? this.nonEmpty(w, false, state, ctx) : { ok: state, fail: state };
    }
    if (nodeType(x) === "BinaryArithm" && (x.Op === OP.arithEq || x.Op === OP.arithNe)) {
      const l = asWord(x.X);
      const r = asWord(x.Y);
      if (l && r) return this.compare(l, x.Op === OP.arithEq ? "eq" : "ne", r, state, ctx);
    }
    return { ok: state, fail: state };
  }
}

/** Words that say "healthy" when a probe's output equals them. */
const HEALTHY = /^(healthy|inservice|in_service|in-service|200|204|ok|ready|available|true|passing|passed|pass|successful|success|running|up|green|serving|alive|active|1)$/i;

/** h when the condition holds, given what values the variable may hold; undefined when unknown. */
function valuesH(values: ReadonlyMap<string, H>, matches: (v: string) => boolean): H | undefined {
  let h: H | undefined;
  for (const [v, vh] of values) {
    if (v === "?" || matches(v)) h = h === undefined ? vh : mergeH(h, vh);
  }
  return h;
}

function widen(s: State): State {
  const vars = new Map<string, VarFact>();
  for (const k of s.vars.keys()) vars.set(k, { kind: "values", values: new Map([["?", "unknown"]]) });
  return with_(s, { h: "unknown", vars });
}

function flattenPipe(st: Stmt): Stmt[] {
  if (!st.Negated && nodeType(st.Cmd) === "BinaryCmd") {
    const b = st.Cmd as unknown as BinaryCmd;
    if (b.Op === OP.pipe || b.Op === OP.pipeAll) return [...flattenPipe(b.X), ...flattenPipe(b.Y)];
  }
  return [st];
}

/** Does the loop's body exit (exit, a function that exits, die…) under a test of its own counter? */
function exitsOnCounter(f: ForClause, funcs: ReadonlyMap<string, FuncDecl>): boolean {
  const loop = (f as unknown as { Loop?: { Name?: { Value: string }; Init?: unknown } }).Loop;
  const name = loop?.Name?.Value ?? counterOf(loop?.Init);
  if (!name) return false;
  const exits = (stmts: Stmt[]): boolean => {
    let found = false;
    walkCalls(stmts, (argv) => {
      const c = argv[0] ?? "";
      if (c === "exit" || c === "return" || DIES.test(base(c))) found = true;
      const fn = funcs.get(c);
      if (fn) walkCalls([fn.Body], (inner) => {
        if (inner[0] === "exit") found = true;
      });
    });
    return found;
  };
  let guarded = false;
  walkStmts(f.Do, (st) => {
    const t = nodeType(st.Cmd);
    if (t === "IfClause") {
      const c = st.Cmd as unknown as IfClause;
      if (mentions(c.Cond, name) && exits(c.Then ?? [])) guarded = true;
    } else if (t === "BinaryCmd") {
      const b = st.Cmd as unknown as BinaryCmd;
      if (b.Op === OP.and && mentions(b.X, name) && exits([b.Y])) guarded = true;
      if (b.Op === OP.or && mentions(b.X, name) && exits([b.Y])) guarded = true;
    }
  });
  return guarded;
}

function counterOf(init: unknown): string | undefined {
  const x = init as { X?: { Value?: string } } | undefined;
  return typeof x?.X?.Value === "string" ? x.X.Value : undefined;
}

/** Whether a subtree reads the variable (`$i`, `${i}`, or a bare `i` in arithmetic). */
function mentions(node: unknown, name: string, depth = 0): boolean {
  if (node === null || typeof node !== "object" || depth > 60) return false;
  if (Array.isArray(node)) return node.some((n) => mentions(n, name, depth + 1));
  const n = node as { type?: string; Value?: unknown; Param?: { Value?: string } };
  if (n.type === "ParamExp" && n.Param?.Value === name) return true;
  if (n.type === "Lit" && n.Value === name) return true;
  return Object.entries(n).some(([k, v]) => k !== "pos" && mentions(v, name, depth + 1));
}

function isCStyle(f: ForClause): boolean {
  return nodeType((f as unknown as { Loop?: unknown }).Loop) === "CStyleLoop";
}

function forWords(f: ForClause): Word[] {
  const loop = (f as unknown as { Loop?: { Items?: Word[] | null } }).Loop;
  return nodeType(loop) === "WordIter" ? (loop?.Items ?? []) : [];
}

const CONTAINER_HOST_COMMANDS = new Set(["docker", "podman", "nerdctl", "docker-compose", "curl", "wget", "echo", "printf", "sleep", "true", "false", "test", "[", "exit", "seq", ":"]);

function onlyContainerLifecycle(file: File): boolean {
  let only = true;
  walkCalls(file.Stmts, (argv) => {
    const cmd = argv[0] === "sudo" ? argv[1] : argv[0];
    if (!CONTAINER_HOST_COMMANDS.has(cmd ?? "") || (cmd === "docker" && argv.includes("exec"))) only = false;
  });
  return only;
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > 60 ? `${t.slice(0, 57)}…` : t;
}

function collectFuncs(list: Stmt[] | null, out: Map<string, FuncDecl>): void {
  walkStmts(list, (st) => {
    if (nodeType(st.Cmd) === "FuncDecl") {
      const fn = st.Cmd as unknown as FuncDecl;
      if (!out.has(fn.Name.Value)) out.set(fn.Name.Value, fn);
    }
  });
}


/** Names that, by universal convention, print a message and exit (defined in a sourced file we cannot see). */
const DIES = /^(die|fail|fatal|abort|panic|bail|bail_out|error_exit|err_exit|exit_with_error|exit_error|croak|fail_hard)$/;
const base = (s: string) => s.slice(s.lastIndexOf("/") + 1);

function isPositional(w: WordInfo): boolean {
  return !w.literal && w.substs.length === 0 && w.params.length === 1 && /^([@*]|[1-9])$/.test(w.params[0]!) && w.text === `\${${w.params[0]}}`;
}

/** Variables assigned exactly once in the whole file, to a literal value (or, with literalOnly false, any value without a command substitution). */
function collectLiterals(list: Stmt[] | null, literalOnly: boolean): Map<string, { text: string; pos: Pos }> {
  const seen = new Map<string, { text: string; pos: Pos } | null>();
  const note = (as: Assign[] | null) => {
    for (const a of as ?? []) {
      const name = a.Name?.Value;
      if (!name) continue;
      const w = a.Value ? wordInfo(a.Value) : undefined;
      const usable = w && !a.Array && (w.literal || (!literalOnly && w.substs.length === 0 && !w.text.includes("…")));
      seen.set(name, seen.has(name) || !usable ? null : { text: w.text, pos: w.pos });
    }
  };
  walkStmts(list, (st) => {
    const t = nodeType(st.Cmd);
    if (t === "CallExpr") note((st.Cmd as unknown as CallExpr).Assigns);
    else if (t === "DeclClause") note((st.Cmd as unknown as DeclClause).Args);
    else if (t === "ForClause") {
      const loop = (st.Cmd as unknown as { Loop?: { Name?: { Value: string } } }).Loop;
      if (loop?.Name?.Value) seen.set(loop.Name.Value, null);
    }
  });
  const out = new Map<string, { text: string; pos: Pos }>();
  for (const [k, v] of seen) if (v) out.set(k, v);
  return out;
}
