// evaluatePolicy: the rows of its doc comment, plus kiln.yaml's `policy` key
// (defaults, normalization, a bad fingerprint located).

import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSpec } from "../../src/config/index.js";
import type { PolicySpec } from "../../src/config/types.js";
import { evaluatePolicy, policyIsEmpty, type PolicyFacts } from "../../src/image/policy.js";

const A = "A".repeat(40);
const B = "B".repeat(40);
const NOW = new Date("2026-12-02T12:00:00Z");
const D = `sha256:${"cd".repeat(32)}`;
const none: PolicySpec = { signedBy: [], requireSbom: false, runtimeSupported: false };
const facts = (f: Partial<PolicyFacts> = {}): PolicyFacts => ({ digest: D, hasSbom: true, runtime: { name: "node", version: "24.22.3" }, created: "2026-11-30T00:00:00Z", ...f });

test("evaluatePolicy: the doc comment's rows", () => {
  const rows: { name: string; policy: PolicySpec; facts: PolicyFacts; ok: boolean; rule?: string; reason: RegExp }[] = [
    {
      name: "signed by a trusted key",
      policy: { ...none, signedBy: [A] },
      facts: facts({ signatures: { accepted: [{ fingerprint: A, identity: "r:5000/x:1", artifact: D }], rejected: [] } }),
      ok: true,
      reason: new RegExp(`signed by ${A} for r:5000/x:1`),
    },
    { name: "no signature", policy: { ...none, signedBy: [A] }, facts: facts({ signatures: { accepted: [], rejected: [] } }), ok: false, rule: "signedBy", reason: /carries no signature; required: one by A+$/ },
    {
      name: "only another key",
      policy: { ...none, signedBy: [A] },
      facts: facts({ signatures: { accepted: [], rejected: [{ artifact: D, reason: "signed by a key that is not trusted" }] } }),
      ok: false,
      rule: "signedBy",
      reason: /no signature by a trusted key \(sha256:cdcdcdcdcdcd…: signed by a key that is not trusted\)/,
    },
    {
      name: "accepted by a key the policy does not name",
      policy: { ...none, signedBy: [A] },
      facts: facts({ signatures: { accepted: [{ fingerprint: B, identity: "r:5000/x:1", artifact: D }], rejected: [] } }),
      ok: false,
      rule: "signedBy",
      reason: /carries no signature/,
    },
    { name: "no SBOM", policy: { ...none, requireSbom: true }, facts: facts({ hasSbom: false }), ok: false, rule: "requireSbom", reason: /no SBOM/ },
    { name: "end-of-life runtime", policy: { ...none, runtimeSupported: true }, facts: facts({ runtime: { name: "node", version: "20.20.2" } }), ok: false, rule: "runtimeSupported", reason: /node 20\.20\.2 reached its end of life on 2026-04-30/ },
    { name: "supported runtime", policy: { ...none, runtimeSupported: true }, facts: facts(), ok: true, reason: /node 24\.22\.3 is supported until 2028-04-30/ },
    { name: "no runtime recorded", policy: { ...none, runtimeSupported: true }, facts: facts({ runtime: undefined }), ok: false, rule: "runtimeSupported", reason: /records no runtime/ },
    { name: "too old", policy: { ...none, maxImageAgeDays: 30 }, facts: facts({ created: "2026-10-23T12:00:00Z" }), ok: false, rule: "maxImageAgeDays", reason: /created 40 days ago, on 2026-10-23T12:00:00Z \(limit 30 days\)/ },
    { name: "young enough", policy: { ...none, maxImageAgeDays: 30 }, facts: facts(), ok: true, reason: /created 2\.5 days ago \(limit 30 days\)/ },
  ];
  for (const r of rows) {
    const v = evaluatePolicy(r.policy, r.facts, NOW);
    assert.equal(v.ok, r.ok, r.name);
    assert.equal(v.rules.length, 1, r.name);
    if (r.rule) assert.equal(v.rules[0]!.rule, r.rule, r.name);
    assert.match(v.rules[0]!.reason, r.reason, r.name);
  }
  const empty = evaluatePolicy(none, facts({ hasSbom: false, runtime: undefined }), NOW);
  assert.deepEqual(empty, { ok: true, digest: D, rules: [] });
  assert.ok(policyIsEmpty(none));
  assert.ok(!policyIsEmpty({ ...none, requireSbom: true }));
});

test("kiln.yaml policy: empty by default; fingerprints upper-cased and de-duplicated, days whole; a short fingerprint is located", () => {
  const base = "name: x\nversion: 1.0.0\nimage: { base: node, files: [a.js], cmd: [/app/a.js] }\n";
  const spec = (text: string) => {
    const r = parseSpec(text, "kiln.yaml");
    assert.ok("spec" in r, JSON.stringify(r));
    return r.spec;
  };
  assert.deepEqual(spec(base).policy, { signedBy: [], requireSbom: false, runtimeSupported: false });
  const set = spec(`${base}policy:\n  signedBy: [${A.toLowerCase()}, ${A}]\n  requireSbom: true\n  runtimeSupported: true\n  maxImageAgeDays: 30\n`);
  assert.deepEqual(set.policy, { signedBy: [A], requireSbom: true, runtimeSupported: true, maxImageAgeDays: 30 });
  const bad = parseSpec(`${base}policy:\n  signedBy: [ABCD]\n`, "kiln.yaml");
  assert.ok("errors" in bad && bad.errors.length > 0);
  assert.match(JSON.stringify(bad.errors[0]), /policy\.signedBy/);
});
