// kiln.yaml `resources:` (issue 12): the quantity parser's worked examples, and what the loader
// makes of the key — absent stays absent, bad values are problems with a path and a hint.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSpec, type SpecProblem } from "../../src/config/index.js";
import { computeConfigHash } from "../../src/config/config-hash.js";
import { describeLimits, formatMemory, normalizeResources, parseMemory } from "../../src/config/resources.js";

describe("parseMemory", () => {
  const rows: [string | number, number | undefined][] = [
    ["256Mi", 268435456],
    ["1.5Gi", 1610612736],
    ["64M", 64000000],
    ["1048576", 1048576],
    [1048576, 1048576],
    ["256MB", undefined],
    ["-1Mi", undefined],
    ["", undefined],
    ["1e9", undefined],
    [1.5, undefined],
  ];
  for (const [input, want] of rows) it(`${JSON.stringify(input)} → ${want}`, () => assert.equal(parseMemory(input), want));
});

describe("formatMemory", () => {
  const rows: [number, string][] = [
    [268435456, "256Mi"],
    [1610612736, "1536Mi"],
    [64000000, "62500Ki"],
    [1000, "1000"],
    [1024 ** 4, "1Ti"],
  ];
  for (const [input, want] of rows) it(`${input} → ${want}`, () => assert.equal(formatMemory(input), want));
});

describe("normalizeResources / describeLimits", () => {
  it("the doc comment's examples", () => {
    assert.deepEqual(normalizeResources({ memory: "256Mi", pids: 64, cpu: 0.5 }), { memoryBytes: 268435456, pids: 64, cpu: 0.5 });
    assert.equal(normalizeResources({}), undefined);
    assert.equal(normalizeResources(undefined), undefined);
    assert.equal(describeLimits({ memoryBytes: 268435456, pids: 64, cpu: 0.5 }), "memory 256Mi, pids 64, cpu 0.5");
    assert.equal(describeLimits(undefined), "none");
  });
});

const BASE = `apiVersion: kiln/v1
name: hello
version: 1.0.0
image:
  base: node@24
  files: [server.js]
  entrypoint: ["/usr/local/bin/node"]
  cmd: ["/app/server.js"]
  user: "1000:1000"
`;

function load(extra: string) {
  return parseSpec(BASE + extra, "kiln.yaml");
}

function problemAt(extra: string, path: string): SpecProblem {
  const r = load(extra);
  assert.ok("errors" in r, "expected problems");
  const p = r.errors.find((e) => e.path === path);
  assert.ok(p, `no problem at ${path}: ${r.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  return p;
}

describe("kiln.yaml resources", () => {
  it("absent: no limits, and the config hash of a file without the key is unchanged by its existence", () => {
    const r = load("");
    assert.ok("spec" in r);
    assert.equal(r.spec.resources, undefined);
    const empty = load("resources: {}\n");
    assert.ok("spec" in empty);
    assert.equal(empty.spec.resources, undefined);
    assert.equal(computeConfigHash(empty.spec), computeConfigHash(r.spec));
  });

  it("parses units and makes a new release (a different config hash)", () => {
    const r = load('resources: { memory: 256Mi, pids: 64, cpu: 0.5 }\n');
    assert.ok("spec" in r, JSON.stringify("errors" in r && r.errors));
    assert.deepEqual(r.spec.resources, { memoryBytes: 268435456, pids: 64, cpu: 0.5 });
    const none = load("");
    assert.ok("spec" in none);
    assert.notEqual(computeConfigHash(r.spec), computeConfigHash(none.spec));
  });

  it("a memory that is not a size names the forms it may take", () => {
    const p = problemAt("resources: { memory: 256MB }\n", "resources.memory");
    assert.match(`${p.message} ${p.hint ?? ""}`, /256Mi/);
    assert.match(p.where, /kiln\.yaml:\d+:\d+/);
  });

  it("a memory below 4Mi or above 1Ti is refused, with the bound", () => {
    assert.match(problemAt("resources: { memory: 1Mi }\n", "resources.memory").message, /below the 4Mi minimum/);
    assert.match(problemAt("resources: { memory: 2Ti }\n", "resources.memory").message, /above the 1Ti maximum/);
  });

  it("pids and cpu bounds, and unknown keys, are problems at their path", () => {
    problemAt("resources: { pids: 2 }\n", "resources.pids");
    problemAt("resources: { cpu: 0 }\n", "resources.cpu");
    problemAt("resources: { cpu: 2000 }\n", "resources.cpu");
    problemAt("resources: { pids: 1.5 }\n", "resources.pids");
    const r = load("resources: { memroy: 64Mi }\n");
    assert.ok("errors" in r);
    assert.ok(r.errors.some((e) => /memroy/.test(`${e.path} ${e.message}`)), r.errors.map((e) => `${e.path}: ${e.message}`).join("; "));
  });
});
