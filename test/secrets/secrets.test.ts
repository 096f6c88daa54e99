import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseSpec } from "../../src/config/index.js";
import { isKilnError } from "../../src/errors.js";
import { computeSecretsDigest, homeSecretKey, planSecretSources, resolveSecrets, SecretKeeper, SECRET_KEY_FILE, trimOneNewline } from "../../src/secrets/index.js";

const BASE = `apiVersion: kiln/v1
name: svc
version: v1
image: { base: node, entrypoint: ["/usr/local/bin/node"], user: "1000:1000" }
`;

describe("kiln.yaml secrets", () => {
  it("reads each source kind, with a command's timeout", () => {
    const r = parseSpec(`${BASE}secrets:\n  A: { fromEnv: PGPASS }\n  B: { fromFile: secrets/b }\n  C: { fromCommand: [pass, show, c], timeout: 3s }\n  D: { fromCommand: [x] }\n`, "kiln.yaml");
    assert.ok("spec" in r, JSON.stringify("errors" in r && r.errors));
    assert.deepEqual(r.spec.secrets, {
      A: { kind: "env", name: "PGPASS" },
      B: { kind: "file", path: "secrets/b" },
      C: { kind: "command", argv: ["pass", "show", "c"], timeoutMs: 3000 },
      D: { kind: "command", argv: ["x"], timeoutMs: 10_000 },
    });
  });

  for (const [yaml, path, words] of [
    ["secrets:\n  A: {}\n", "secrets.A", /names no source/],
    ["secrets:\n  A: { fromEnv: X, fromFile: y }\n", "secrets.A", /2 sources/],
    ["env: { A: plain }\nsecrets:\n  A: { fromEnv: X }\n", "secrets.A", /declared in env too/],
    ["secrets:\n  PORT: { fromEnv: X }\n", "secrets.PORT", /set by kiln/],
    ["secrets:\n  _kiln_x: { fromEnv: X }\n", "secrets._kiln_x", /reserved/],
    ["secrets:\n  A: { fromCommand: [] }\n", "secrets.A.fromCommand", /./],
    ["secrets:\n  A: { fromVault: x }\n", "secrets.A.fromVault", /./],
  ] as const) {
    it(`refuses ${yaml.trim().replace(/\n\s*/g, " ")} at ${path}`, () => {
      const r = parseSpec(BASE + yaml, "kiln.yaml");
      assert.ok("errors" in r, "expected problems");
      const p = r.errors.find((e) => e.path === path);
      assert.ok(p, `no problem at ${path}: ${JSON.stringify(r.errors)}`);
      assert.match(p.message, words);
      assert.match(p.where, /^kiln\.yaml:\d+:\d+$/);
    });
  }

  it("an environment's secret replaces the top level's of the same name whole", () => {
    const text = `${BASE}secrets:\n  DB: { fromFile: staging.pw }\n  API: { fromEnv: API }\nenvironments:\n  staging: { listen: "127.0.0.1:9001" }\n  production:\n    listen: "127.0.0.1:9002"\n    secrets: { DB: { fromEnv: PROD_DB } }\n`;
    const prod = parseSpec(text, "kiln.yaml", "production");
    assert.ok("spec" in prod, JSON.stringify("errors" in prod && prod.errors));
    assert.deepEqual(prod.spec.secrets, { DB: { kind: "env", name: "PROD_DB" }, API: { kind: "env", name: "API" } });
    const staging = parseSpec(text, "kiln.yaml", "staging");
    assert.ok("spec" in staging);
    assert.deepEqual(staging.spec.secrets.DB, { kind: "file", path: "staging.pw" });
  });
});

describe("planSecretSources (worked examples)", () => {
  it("makes paths absolute and gives commands their directory", () => {
    assert.deepEqual(
      planSecretSources(
        { E: { kind: "env", name: "PGPASS" }, F: { kind: "file", path: "secrets/api" }, G: { kind: "file", path: "/run/s/api" }, C: { kind: "command", argv: ["pass", "x"], timeoutMs: 10_000 } },
        "/p",
      ),
      { C: { fromCommand: ["pass", "x"], cwd: "/p", timeoutMs: 10_000 }, E: { fromEnv: "PGPASS" }, F: { fromFile: "/p/secrets/api" }, G: { fromFile: "/run/s/api" } },
    );
  });
  for (const [v, want] of [["a\n", "a"], ["a\r\n", "a"], ["a\n\n", "a\n"], ["a", "a"], ["", ""]] as const)
    it(`trimOneNewline(${JSON.stringify(v)}) → ${JSON.stringify(want)}`, () => assert.equal(trimOneNewline(v), want));
});

describe("computeSecretsDigest (worked examples)", () => {
  const k = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const d = (values: Record<string, string>, key = k) => computeSecretsDigest(key, values);
  it("order does not matter", () => assert.equal(d({ A: "1", B: "2" }), d({ B: "2", A: "1" })));
  it("a changed value changes it", () => assert.notEqual(d({ A: "1" }), d({ A: "2" })));
  it("a renamed secret changes it", () => assert.notEqual(d({ A: "1" }), d({ B: "1" })));
  it("another key changes it", () => assert.notEqual(d({ A: "1" }), d({ A: "1" }, k2)));
  it("values cannot be spliced across names", () => assert.notEqual(d({ A: "1", B: "" }), d({ A: "1\0B" })));
  it("is an HMAC that does not contain the value", () => {
    const v = d({ A: "hunter2" });
    assert.match(v, /^hmac-sha256:[0-9a-f]{64}$/);
    assert.ok(!v.includes("hunter2"));
  });
});

describe("the home's secret key", () => {
  it("is created once, 0600, and read back the same", () => {
    const home = mkdtempSync(join(tmpdir(), "kiln-key-"));
    const a = homeSecretKey(home);
    const b = homeSecretKey(home);
    assert.deepEqual(a, b);
    assert.equal(a.length, 32);
    assert.equal(statSync(join(home, SECRET_KEY_FILE)).mode & 0o777, 0o600);
  });
  it("is refused when others may read it", () => {
    const home = mkdtempSync(join(tmpdir(), "kiln-key-"));
    homeSecretKey(home);
    chmodSync(join(home, SECRET_KEY_FILE), 0o644);
    assert.throws(() => homeSecretKey(home), (e: unknown) => isKilnError(e) && e.code === "KILN_E_UNSAFE");
  });
});

describe("SecretKeeper", () => {
  const key = Buffer.alloc(32, 7);
  const keeper = (env: NodeJS.ProcessEnv) => new SecretKeeper({ key: () => key, env });
  const sources = { TOKEN: { fromEnv: "T" } };
  const release = (v: string) => ({ sources, digest: computeSecretsDigest(key, { TOKEN: v }) });

  it("gives the values a deploy brought, without reading the source", async () => {
    const k = keeper({});
    k.check(release("s3cret"), { TOKEN: "s3cret" });
    k.hold("r1", { TOKEN: "s3cret" });
    assert.deepEqual(await k.valuesFor("r1", release("s3cret")), { TOKEN: "s3cret" });
  });
  it("refuses values whose digest is not the release's", () => {
    assert.throws(() => keeper({}).check(release("a"), { TOKEN: "b" }), /does not match/);
    assert.throws(() => keeper({}).check(release("a"), { OTHER: "a" }), /not the release's secrets/);
    assert.throws(() => keeper({}).check(undefined, { TOKEN: "a" }), /declares no secrets/);
  });
  it("after a restart, reads the source again and launches only with the deployed values", async () => {
    assert.deepEqual(await keeper({ T: "v1" }).valuesFor("r1", release("v1")), { TOKEN: "v1" });
    await assert.rejects(keeper({ T: "v2" }).valuesFor("r1", release("v1")), (e: unknown) => isKilnError(e) && /changed since it was deployed/.test(e.message) && !e.message.includes("v2") && !e.message.includes("v1 "));
    await assert.rejects(keeper({}).valuesFor("r1", release("v1")), (e: unknown) => isKilnError(e) && /environment variable T is not set/.test(e.message));
  });
  it("a release without secrets needs nothing", async () => assert.deepEqual(await keeper({}).valuesFor("r1", undefined), {}));
});

describe("resolveSecrets (env and file; commands are in integration/)", () => {
  it("reads the environment and files, one trailing newline dropped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-sec-"));
    writeFileSync(join(dir, "f"), "from-file\n");
    assert.deepEqual(await resolveSecrets({ A: { fromEnv: "X" }, B: { fromFile: join(dir, "f") } }, { env: { X: "from-env" }, stderr: "ignore" }), { A: "from-env", B: "from-file" });
  });
  it("names the secret and source, never the value, when it fails", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-sec-"));
    await assert.rejects(resolveSecrets({ A: { fromFile: join(dir, "missing") } }, { env: {}, stderr: "ignore" }), (e: unknown) => isKilnError(e) && e.code === "KILN_E_SPEC" && /secret A: file .*missing cannot be read \(ENOENT\)/.test(e.message));
    await assert.rejects(resolveSecrets({ A: { fromFile: dir } }, { env: {}, stderr: "ignore" }), /not a regular file/);
    writeFileSync(join(dir, "big"), "x".repeat(70 * 1024));
    await assert.rejects(resolveSecrets({ A: { fromFile: join(dir, "big") } }, { env: {}, stderr: "ignore" }), /larger than/);
    await assert.rejects(resolveSecrets({ A: { fromEnv: "NOPE" } }, { env: {}, stderr: "ignore" }), /environment variable NOPE is not set/);
    assert.ok(readFileSync(join(dir, "big")).length > 0);
  });
});
