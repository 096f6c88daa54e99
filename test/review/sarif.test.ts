// `--format sarif` output validated against the SARIF 2.1.0 JSON schema. The schema file is
// the OASIS 2.1.0 (rtm.5) schema as shipped by Microsoft's @microsoft/jest-sarif package (a
// devDependency used only for this file); it is draft-04, so it is compiled with
// ajv-draft-04, and its one regular expression that is not valid in Unicode mode (a
// `language` pattern) needs unicodeRegExp: false.

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import Ajv04 from "ajv-draft-04";
import addFormats from "ajv-formats";
import { reviewFiles, RULES, toSarif } from "../../src/review/index.js";
import { FIXTURES } from "./helpers.js";

const require = createRequire(import.meta.url);
const schema = require("@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json") as object;
const ajv = new Ajv04.default({ allErrors: true, strict: false, unicodeRegExp: false });
addFormats.default(ajv);
const validate = ajv.compile(schema);

const dirs = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== "broken")
  .map((d) => d.name);

const corpus = reviewFiles(dirs, { cwd: FIXTURES });

test("the schema is really enforced (an invalid log is rejected)", () => {
  assert.equal(validate({ version: "2.1.0", runs: [{ tool: { driver: { name: "x" } }, results: [{ message: { text: "m" }, level: "fatal" }] }] }), false);
  assert.equal(validate({ version: "2.0.0", runs: [] }), false);
});

test("SARIF for the whole corpus validates against the SARIF 2.1.0 schema", async () => {
  const r = await corpus;
  const log = JSON.parse(JSON.stringify(toSarif(r, "0.1.0")));
  const ok = validate(log);
  assert.ok(ok, JSON.stringify(validate.errors?.slice(0, 5), null, 2));
});

test("SARIF for a clean result validates too", async () => {
  const r = await reviewFiles(["kiln/good"], { cwd: FIXTURES });
  assert.equal(r.findings.length, 0);
  assert.ok(validate(JSON.parse(JSON.stringify(toSarif(r, "0.1.0")))), JSON.stringify(validate.errors));
});

test("SARIF carries every rule and every result with its location", async () => {
  const r = await corpus;
  const log = toSarif(r, "0.1.0");
  const run = log.runs[0]!;
  const rules = run.tool.driver.rules ?? [];
  assert.deepEqual(rules.map((x) => x.id), RULES.map((x) => x.id));
  for (const rule of rules) {
    assert.ok(rule.shortDescription?.text && rule.fullDescription?.text && rule.help?.text, rule.id);
    assert.ok(["error", "warning", "note"].includes(rule.defaultConfiguration?.level ?? ""), rule.id);
  }
  const results = run.results ?? [];
  assert.equal(results.length, r.findings.length + r.suppressed.length);
  const first = results[0]!;
  const f = r.findings[0]!;
  assert.equal(first.ruleId, f.ruleId);
  assert.equal(rules[first.ruleIndex!]!.id, f.ruleId);
  assert.deepEqual(first.locations?.[0]?.physicalLocation?.region, { startLine: f.line, startColumn: f.col });
  assert.equal(first.locations?.[0]?.physicalLocation?.artifactLocation?.uri, f.file);
  const suppressed = results.filter((x) => x.suppressions?.length);
  assert.equal(suppressed.length, r.suppressed.length);
  for (const s of suppressed) assert.equal(s.suppressions![0]!.kind, "inSource");
});
