// kiln.yaml as hostile input: bounds, reserved env names and forbidden volume
// paths are refused at validate time (with file:line:col), and 1,500 seeded
// mutations of the examples' kiln.yaml files always end in a spec or located
// problems — never another exception. In-process, so fast and bounded.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import fc from "fast-check";
import { parseDocument, stringify } from "yaml";
import { isKilnError } from "../../src/errors.js";
import { loadSpec, parseSpec, type Spec, type SpecProblem } from "../../src/config/index.js";

const BASE = "name: hello\nversion: 1.0.0\nimage:\n  files: [server.js]\n";

function problems(text: string): SpecProblem[] {
  const r = parseSpec(text, "kiln.yaml");
  if ("spec" in r) assert.fail(`expected problems for:\n${text}`);
  return r.errors;
}

describe("validate refuses what launch would refuse, at the key", () => {
  const rows: { name: string; yaml: string; path: string; message: RegExp }[] = [
    { name: "a probe timeout of 99999999h", yaml: `${BASE}health:\n  timeout: 99999999h\n`, path: "health.timeout", message: /maximum of 24 days/ },
    { name: "a deadline of 9999999999999999999999s", yaml: `${BASE}strategy:\n  rolling:\n    deadline: 9999999999999999999999s\n`, path: "strategy.rolling.deadline", message: /maximum/ },
    { name: "a numeric drainTimeout of 1e12 seconds", yaml: `${BASE}drainTimeout: 1000000000000\n`, path: "drainTimeout", message: /./ },
    { name: "an infinite drainTimeout", yaml: `${BASE}drainTimeout: .inf\n`, path: "drainTimeout", message: /./ },
    { name: "a canary pause of 30000h", yaml: `${BASE}strategy:\n  canary:\n    steps:\n      - setWeight: 10\n      - pause: 30000h\n`, path: "strategy.canary.steps[1].pause", message: /maximum/ },
    { name: "a healthy threshold of 10^12", yaml: `${BASE}health:\n  healthyThreshold: 1000000000000\n`, path: "health.healthyThreshold", message: /./ },
    { name: "env PORT (kiln sets it)", yaml: `${BASE}env:\n  PORT: "9999"\n`, path: "env.PORT", message: /set by kiln/ },
    { name: "env _kiln_ prefix", yaml: `${BASE}env:\n  _kiln_fd: "3"\n`, path: "env._kiln_fd", message: /reserved/ },
    { name: "a volume at /proc/self", yaml: `${BASE}volumes:\n  - {name: p, path: /proc/self}\n`, path: "volumes[0].path", message: /inside \/proc/ },
    { name: "a volume at /sys", yaml: `${BASE}volumes:\n  - {name: s, path: /sys}\n`, path: "volumes[0].path", message: /inside \/sys/ },
    { name: "a volume at /dev/shm", yaml: `${BASE}volumes:\n  - {name: d, path: /dev/shm}\n`, path: "volumes[0].path", message: /inside \/dev/ },
    { name: "a volume at /data/../proc", yaml: `${BASE}volumes:\n  - {name: d, path: /data/../proc}\n`, path: "volumes[0].path", message: /inside \/proc/ },
    { name: "a volume at /", yaml: `${BASE}volumes:\n  - {name: r, path: /}\n`, path: "volumes[0].path", message: /at "\/"/ },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const ps = problems(r.yaml);
      const p = ps.find((x) => x.path === r.path);
      assert.ok(p, `no problem at ${r.path}: ${ps.map((x) => `${x.path}: ${x.message}`).join("; ")}`);
      assert.match(p.message, r.message);
      assert.match(p.where, /^kiln\.yaml:\d+:\d+$/);
    });
  }

  test("the largest durations and counts still validate", () => {
    const r = parseSpec(`${BASE}health:\n  timeout: 24d\n`, "kiln.yaml");
    assert.ok("errors" in r, "days are not a unit");
    const ok = parseSpec(`${BASE}health:\n  timeout: 596h\n  healthyThreshold: 1000000\nenv:\n  PORTAL: x\nvolumes:\n  - {name: d, path: /data}\n  - {name: p, path: /procs}\n`, "kiln.yaml");
    assert.ok("spec" in ok, JSON.stringify(ok));
  });
});

// ---------------------------------------------------------------------------
// Fuzzing

const EXAMPLES = ["hello", "notes", "stateful"].map((n) => readFileSync(fileURLToPath(new URL(`../../../examples/${n}/kiln.yaml`, import.meta.url)), "utf8"));

const HOSTILE_SCALARS: unknown[] = [
  -1, 0, 1e308, -1e308, 2 ** 53, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "", " ", "\0", "99999999999999999999h", "1e400s", "-5s", "0.0000001ms",
  "../../etc/passwd", "/proc/self", "/", "PORT", "a".repeat(10_000), "ünïcødé", "${HOME}", "*alias", "&anchor x", "!!binary aGVsbG8=", "manual", null, true, [], {}, [[[]]], { a: { b: { c: {} } } },
];

/** A seeded structural mutation: replace, delete or duplicate a node somewhere in the document. */
function mutateTree(text: string, picks: number[], scalars: unknown[]): string {
  const doc = parseDocument(text);
  const data = doc.toJS() as unknown;
  const nodes: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => (nodes.push({ parent: v, key: i }), walk(x)));
    else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) (nodes.push({ parent: v as Record<string, unknown>, key: k }), walk(x));
  };
  walk(data);
  for (let i = 0; i + 2 < picks.length && nodes.length > 0; i += 3) {
    const n = nodes[picks[i]! % nodes.length]!;
    const op = picks[i + 1]! % 4;
    const parent = n.parent as Record<string | number, unknown>;
    if (op === 0) parent[n.key] = scalars[picks[i + 2]! % scalars.length];
    else if (op === 1) delete parent[n.key];
    else if (op === 2) parent[n.key] = [parent[n.key], parent[n.key]];
    else parent[`${String(n.key)}_x`] = parent[n.key];
  }
  return stringify(data);
}

/** A seeded byte-level mutation: YAML's significant characters inserted, deleted or swapped in. */
function mutateText(text: string, picks: number[]): string {
  const alphabet = [":", "-", " ", "\n", "\t", "'", '"', "[", "]", "{", "}", "&a", "*a", "#", "!", "|", ">", "%", "@", "`", "\0", "\u00a0", "0", "9", "h"];
  let s = text;
  for (let i = 0; i + 2 < picks.length; i += 3) {
    const at = picks[i]! % (s.length + 1);
    const op = picks[i + 1]! % 3;
    const ch = alphabet[picks[i + 2]! % alphabet.length]!;
    s = op === 0 ? s.slice(0, at) + ch + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + ch + s.slice(at + 1);
  }
  return s;
}

/** The contract: a spec whose durations are usable timers, or problems each with a file:line:col. */
function checkOutcome(text: string): void {
  let r: ReturnType<typeof parseSpec>;
  try {
    r = parseSpec(text, "kiln.yaml");
  } catch (e) {
    throw new Error(`parseSpec threw instead of reporting a problem: ${e instanceof Error ? e.stack : String(e)}\n--- input ---\n${text.slice(0, 2000)}`);
  }
  if ("errors" in r) {
    assert.ok(r.errors.length > 0);
    for (const p of r.errors) {
      assert.match(p.where, /^kiln\.yaml:\d+:\d+$/, `problem without a location: ${JSON.stringify(p)}`);
      assert.equal(typeof p.message, "string");
    }
    return;
  }
  assertTimers(r.spec);
}

/** Every number in a valid spec is finite, and every ms duration fits a Node timer. */
function assertTimers(spec: Spec): void {
  const walk = (v: unknown, path: string) => {
    if (typeof v === "number") {
      assert.ok(Number.isFinite(v), `${path} is ${v}`);
      assert.ok(v <= 2 ** 31 - 1 || !/(timeout|Timeout|interval|grace|deadline|Warmup|bakeTime|keepPreviousFor|window|guardWindow|pause|Delay|After)$/.test(path), `${path} = ${v} does not fit a timer`);
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
  };
  walk(spec, "");
}

describe("fuzzed kiln.yaml: a spec or located problems, never another exception", () => {
  test("1,000 structural mutations of the examples (seeded)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: EXAMPLES.length - 1 }), fc.array(fc.nat(), { minLength: 3, maxLength: 15 }), (ex, picks) => {
        checkOutcome(mutateTree(EXAMPLES[ex]!, picks, HOSTILE_SCALARS));
      }),
      { seed: 12, numRuns: 1000 },
    );
  });

  test("500 text mutations of the examples (seeded)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: EXAMPLES.length - 1 }), fc.array(fc.nat(), { minLength: 3, maxLength: 30 }), (ex, picks) => {
        checkOutcome(mutateText(EXAMPLES[ex]!, picks));
      }),
      { seed: 13, numRuns: 500 },
    );
  });

  test("loadSpec on a hostile file: a KilnError with a location, exit code 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-hostile-"));
    try {
      const file = join(dir, "kiln.yaml");
      writeFileSync(file, `${BASE}health:\n  timeout: 99999999999h\nenv:\n  PORT: "1"\n`);
      assert.throws(
        () => loadSpec(file),
        (e: unknown) => isKilnError(e) && e.code === "KILN_E_SPEC" && e.exitCode === 2 && e.details.length >= 2 && e.details.every((d) => /kiln\.yaml:\d+:\d+$/.test(d.where ?? "")),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
