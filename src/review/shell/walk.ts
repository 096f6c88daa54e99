// Walking the mvdan/sh syntax tree: every statement, including those inside compound
// commands, functions and command substitutions.

import { nodeType, wordInfo, type BinaryCmd, type CallExpr, type CaseClause, type DeclClause, type FuncDecl, type IfClause, type Stmt, type TimeClause } from "./ast.js";

/** Every statement in the tree, including those inside compound commands and substitutions. */
export function walkStmts(list: Stmt[] | null | undefined, visit: (st: Stmt) => void): void {
  for (const st of list ?? []) {
    visit(st);
    const c = st.Cmd as unknown as Record<string, unknown> | null;
    if (!c) continue;
    const t = nodeType(c);
    const kids = (k: string) => walkStmts(c[k] as Stmt[] | null, visit);
    switch (t) {
      case "BinaryCmd":
        walkStmts([(c as unknown as BinaryCmd).X, (c as unknown as BinaryCmd).Y], visit);
        break;
      case "IfClause": {
        let ic: IfClause | null = c as unknown as IfClause;
        while (ic) {
          walkStmts(ic.Cond, visit);
          walkStmts(ic.Then, visit);
          ic = ic.Else;
        }
        break;
      }
      case "WhileClause":
        kids("Cond");
        kids("Do");
        break;
      case "ForClause":
        kids("Do");
        break;
      case "Block":
      case "Subshell":
        kids("Stmts");
        break;
      case "FuncDecl":
        walkStmts([(c as unknown as FuncDecl).Body], visit);
        break;
      case "CaseClause":
        for (const it of (c as unknown as CaseClause).Items ?? []) walkStmts(it.Stmts, visit);
        break;
      case "TimeClause": {
        const s = (c as unknown as TimeClause).Stmt;
        if (s) walkStmts([s], visit);
        break;
      }
      case "CallExpr": {
        const ce = c as unknown as CallExpr;
        for (const w of ce.Args ?? []) for (const sub of wordInfo(w).substs) walkStmts(sub, visit);
        for (const a of ce.Assigns ?? []) if (a.Value) for (const sub of wordInfo(a.Value).substs) walkStmts(sub, visit);
        break;
      }
      case "DeclClause":
        for (const a of (c as unknown as DeclClause).Args ?? []) if (a.Value) for (const sub of wordInfo(a.Value).substs) walkStmts(sub, visit);
        break;
    }
  }
}

/** argv texts of every simple command in the tree. */
export function walkCalls(list: Stmt[] | null | undefined, visit: (argv: string[], st: Stmt) => void): void {
  walkStmts(list, (st) => {
    if (nodeType(st.Cmd) === "CallExpr") {
      const args = (st.Cmd as unknown as CallExpr).Args ?? [];
      if (args.length > 0) visit(args.map((w) => wordInfo(w).text), st);
    }
  });
}
