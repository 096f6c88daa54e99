import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { RULES, rulesMarkdown } from "../../src/review/index.js";
import { ROOT } from "./helpers.js";

test("at least 25 rules, each with a unique id, a severity, a title, a rationale, a pattern and a fix", () => {
  assert.ok(RULES.length >= 25, `${RULES.length} rules`);
  assert.equal(new Set(RULES.map((r) => r.id)).size, RULES.length);
  for (const r of RULES) {
    assert.match(r.id, /^KR\d{3}$/);
    assert.ok(["error", "warning", "info"].includes(r.severity), r.id);
    assert.ok(r.title.length > 10 && r.rationale.length > 60 && r.pattern.length > 3 && r.fix.length > 10, r.id);
    assert.ok(r.kinds.length > 0, r.id);
  }
});

test("docs/review-rules.md is the rule catalog as generated", () => {
  assert.equal(readFileSync(join(ROOT, "docs/review-rules.md"), "utf8"), rulesMarkdown());
});
