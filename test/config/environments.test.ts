import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { chooseEnvironment, loadSpec, mergeOverrides, parseSpec, serviceKey, type SpecProblem } from "../../src/config/index.js";
import { KilnError } from "../../src/errors.js";

const BASE = `name: hello
version: 1.0.0
image:
  base: node
  files: [server.js]
  cmd: ["node", "server.js"]
env: { GREETING: hi }
`;

const STAGES = `${BASE}environments:
  staging:
    instances: 1
    listen: 127.0.0.1:8081
  production:
    instances: 4
    listen: 127.0.0.1:8082
    provider: docker
    env: { GREETING: hello, DB_URL: postgres://db }
    strategy: { type: blue-green, rolling: { minHealthyPercent: 75 } }
promotion: { requireDrill: true, soak: 10m }
`;

function problems(text: string): SpecProblem[] {
  const r = parseSpec(text, "kiln.yaml");
  if (!("errors" in r)) assert.fail("expected problems");
  return r.errors;
}

describe("mergeOverrides (doc comment rows)", () => {
  const rows: Array<[Record<string, unknown>, Record<string, unknown>, Record<string, unknown>]> = [
    [{ strategy: { type: "rolling", rolling: { minHealthyPercent: 100 } } }, { strategy: { rolling: { minHealthyPercent: 50 } } }, { strategy: { type: "rolling", rolling: { minHealthyPercent: 50 } } }],
    [{ env: { A: "1", B: "2" } }, { env: { B: "3" } }, { env: { A: "1", B: "3" } }],
    [{ strategy: { rolling: { checkpoints: [25, 50] } } }, { strategy: { rolling: { checkpoints: [] } } }, { strategy: { rolling: { checkpoints: [] } } }],
    [{ instances: 3 }, { instances: 1 }, { instances: 1 }],
  ];
  for (const [base, over, want] of rows) {
    it(`${JSON.stringify(base)} + ${JSON.stringify(over)}`, () => {
      const before = structuredClone(base);
      assert.deepEqual(mergeOverrides(base, over), want);
      assert.deepEqual(base, before, "the base is not modified");
    });
  }
});

describe("chooseEnvironment (doc comment rows)", () => {
  it("picks the asked one, else the default, else the first; none without environments", () => {
    assert.equal(chooseEnvironment([], undefined, undefined), undefined);
    assert.equal(chooseEnvironment(["staging", "production"], undefined, undefined), "staging");
    assert.equal(chooseEnvironment(["staging", "production"], "production", undefined), "production");
    assert.equal(chooseEnvironment(["staging", "production"], undefined, "production"), "production");
  });
  it("refuses an unknown environment with a suggestion, and --env without environments", () => {
    assert.throws(() => chooseEnvironment(["staging", "production"], "prod", undefined), (e: KilnError) => e.code === "KILN_E_USAGE" && /unknown environment "prod"/.test(e.message) && /did you mean "production"/.test(e.hint ?? ""));
    assert.throws(() => chooseEnvironment([], "staging", undefined), (e: KilnError) => e.code === "KILN_E_USAGE" && /declares no environments/.test(e.message));
  });
  it("serviceKey keeps the name without environments", () => {
    assert.equal(serviceKey("hello", undefined), "hello");
    assert.equal(serviceKey("hello", "staging"), "hello-staging");
  });
});

describe("environments in kiln.yaml", () => {
  it("a file without environments parses as before (no environment, empty list)", () => {
    const r = parseSpec(BASE, "kiln.yaml");
    assert.ok(!("errors" in r));
    assert.equal(r.environment, undefined);
    assert.deepEqual(r.environments, []);
    assert.deepEqual(r.spec, r.shared);
    assert.deepEqual(r.spec.promotion, { requireDrill: false });
  });

  it("each environment gets the file with its overrides merged; the first is the default", () => {
    const st = parseSpec(STAGES, "kiln.yaml");
    assert.ok(!("errors" in st));
    assert.equal(st.environment, "staging");
    assert.equal(st.spec.instances, 1);
    assert.equal(st.spec.listen, "127.0.0.1:8081");
    assert.deepEqual(st.spec.env, { GREETING: "hi" });
    const pr = parseSpec(STAGES, "kiln.yaml", "production");
    assert.ok(!("errors" in pr));
    assert.equal(pr.spec.instances, 4);
    assert.equal(pr.spec.provider, "docker");
    assert.deepEqual(pr.spec.env, { GREETING: "hello", DB_URL: "postgres://db" });
    assert.equal(pr.spec.strategy.type, "blue-green");
    assert.equal(pr.spec.strategy.rolling.minHealthyPercent, 75);
    assert.equal(pr.spec.strategy.rolling.maxHealthyPercent, 150, "defaults stay under an override");
    assert.deepEqual(pr.spec.image, st.spec.image, "the image is the same");
    assert.deepEqual(pr.spec.promotion, { requireDrill: true, soak: 600_000 });
  });

  it("defaultEnvironment picks the default", () => {
    const r = parseSpec(`${STAGES}defaultEnvironment: production\n`, "kiln.yaml");
    assert.ok(!("errors" in r));
    assert.equal(r.environment, "production");
  });

  it("the config hash is the shared part: equal in every environment, the key is NAME-ENV", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-envs-"));
    try {
      writeFileSync(join(dir, "kiln.yaml"), STAGES);
      const st = loadSpec(join(dir, "kiln.yaml"));
      const pr = loadSpec(join(dir, "kiln.yaml"), "production");
      assert.equal(st.configHash, pr.configHash);
      assert.equal(st.service, "hello-staging");
      assert.equal(pr.service, "hello-production");
      writeFileSync(join(dir, "kiln.yaml"), BASE);
      const plain = loadSpec(join(dir, "kiln.yaml"));
      assert.equal(plain.service, "hello");
      assert.equal(plain.environment, undefined);
      // the shared part of STAGES is BASE: same hash
      assert.equal(plain.configHash, st.configHash);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an attempt to override the image (or anything else shared) names the key", () => {
    const ps = problems(`${BASE}environments:\n  production:\n    image: { base: node }\n    health: { path: /x }\n`);
    const image = ps.find((p) => p.path === "environments.production.image");
    assert.ok(image, JSON.stringify(ps));
    assert.match(image.message, /"image" cannot differ between environments/);
    assert.match(image.where, /^kiln\.yaml:10:5$/);
    assert.ok(ps.some((p) => p.path === "environments.production.health"));
  });

  it("an override's bad values are reported at the override, checked with the same rules", () => {
    const ps = problems(`${BASE}environments:\n  staging:\n    instances: x\n    listen: 127.0.0.1:99999\n    strategy: { rolling: { minHealthyPercent: 500, foo: 1 } }\n    env: { PORT: "1" }\n`);
    for (const path of ["environments.staging.instances", "environments.staging.listen", "environments.staging.strategy.rolling.minHealthyPercent", "environments.staging.strategy.rolling.foo", "environments.staging.env.PORT"]) {
      assert.ok(ps.some((p) => p.path === path), `${path} in ${JSON.stringify(ps.map((p) => p.path))}`);
    }
  });

  it("two environments on one listen address, an unknown defaultEnvironment and a bad name are problems", () => {
    const ps = problems(`${BASE}environments:\n  staging: {}\n  production: {}\n  Bad_Name: {}\ndefaultEnvironment: prodution\n`);
    assert.ok(ps.some((p) => p.path === "environments.production.listen" && /both listen on 127\.0\.0\.1:8080/.test(p.message)), JSON.stringify(ps));
    assert.ok(ps.some((p) => p.path === "defaultEnvironment" && /did you mean "production"/.test(p.hint ?? "")));
    assert.ok(ps.some((p) => /Bad_Name/.test(p.path) || /Bad_Name/.test(p.message)), JSON.stringify(ps));
  });
});
