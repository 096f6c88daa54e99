// Signatures a tool kiln did not write verifies: the hello example baked in
// three versions (three digests), pushed to the real registry at
// KILN_TEST_REGISTRY and
//   1.0.0 signed with kiln's key (`kiln push --sign`),
//   1.0.1 not signed,
//   1.0.2 signed with another key (a second keyring, KILN_GNUPGHOME);
// `kiln keys policy` writes policy.json (signedBy kiln's key) and registries.d
// (the lookaside), and the real skopeo copies 1.0.0 and refuses the other two.
// `kiln deploy` under a kiln.yaml policy requiring kiln's key refuses the
// unsigned and wrong-key images (exit 2) and `kiln audit --policy-only` reports the verdict.
// Then the signature travels: a second KILN_HOME that only pulls (and imports
// the public key) gets it into its own lookaside, and skopeo accepts from there.
// gpg runs only in temporary keyrings; their agents are stopped at the end.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { helloWorkspace } from "../../integration/support.js";
import { KILN_BIN as CLI } from "../../support/kiln-bin.js";
import { registryAddress } from "../../support/services.js";
import { hasCommand, tempDir } from "../helpers.js";

const RUN = randomBytes(4).toString("hex");
const REPO = `kiln-it/signed-${RUN}`;
let dir = "";
let ws: Awaited<ReturnType<typeof helloWorkspace>>;
const digests: Record<string, string> = {};
const keyrings: string[] = [];

function kiln(home: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ws.dir, env: { ...process.env, KILN_HOME: home, ...env }, encoding: "utf8", timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function skopeoCopy(policyDir: string, ref: string, dest: string) {
  const r = spawnSync("skopeo", ["--policy", join(policyDir, "policy.json"), "--registries.d", join(policyDir, "registries.d"), "copy", "--src-tls-verify=false", `docker://${ref}`, `dir:${dest}`], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

before(async () => {
  ws = await helloWorkspace("kiln-sign-it-");
  dir = ws.dir;
});

after(() => {
  // gpg started an agent per keyring that signed: stop exactly those.
  for (const k of keyrings) spawnSync("gpgconf", ["--homedir", k, "--kill", "gpg-agent"], { stdio: "ignore", timeout: 10_000 });
  spawnSync("rm", ["-rf", dir]);
});

test("skopeo under a signedBy policy for kiln's key: accepts the signed image, refuses the unsigned and the wrong-key one; the signature travels with pull", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  for (const cmd of ["gpg", "skopeo"]) {
    if (!hasCommand(cmd)) {
      if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${cmd} is not installed (KILN_REQUIRE_ALL=1)`);
      t.skip(`${cmd} is not installed`);
      return;
    }
  }
  const home = join(dir, ".kiln");
  const other = join(await tempDir(t, "kiln-other-keyring-"), "gnupg");
  keyrings.push(join(home, "gnupg"), other);

  const gen = kiln(home, ["keys", "generate", "--name", "kiln test", "--email", "kiln@example.invalid", "--json"]);
  assert.equal(gen.status, 0, gen.stderr);
  const fpr = (JSON.parse(gen.stdout) as { fingerprint: string }).fingerprint;
  assert.match(fpr, /^[0-9A-F]{40}$/);
  const gen2 = kiln(home, ["keys", "generate", "--name", "intruder", "--email", "x@example.invalid", "--json"], { KILN_GNUPGHOME: other });
  assert.equal(gen2.status, 0, gen2.stderr);
  const wrong = (JSON.parse(gen2.stdout) as { fingerprint: string }).fingerprint;
  assert.notEqual(wrong, fpr);
  const list = kiln(home, ["keys", "list", "--json"]);
  assert.deepEqual((JSON.parse(list.stdout) as { fingerprint: string; secret: boolean }[]).map((k) => [k.fingerprint, k.secret]), [[fpr, true]], "the second key went to the other keyring only");

  for (const v of ["1.0.0", "1.0.1", "1.0.2"]) {
    ws.release(v);
    const b = kiln(home, ["bake", "--json"]);
    assert.equal(b.status, 0, b.stderr);
    digests[v] = (JSON.parse(b.stdout) as { digest: string }).digest;
  }
  assert.equal(new Set(Object.values(digests)).size, 3);

  const signed = kiln(home, ["push", "hello:1.0.0", `${reg}/${REPO}:1.0.0`, "--sign", "--json"]);
  assert.equal(signed.status, 0, signed.stderr);
  const s = JSON.parse(signed.stdout) as { signed: { fingerprint: string; identity: string; lookasideFile: string }; referrers: { pushed: { artifactType: string }[] } };
  assert.equal(s.signed.fingerprint, fpr);
  assert.equal(s.signed.identity, `${reg}/${REPO}:1.0.0`);
  assert.equal(s.signed.lookasideFile, join(home, "sigstore", reg, `${REPO}@sha256=${digests["1.0.0"]!.slice(7)}`, "signature-1"));
  assert.equal(kiln(home, ["push", "hello:1.0.1", `${reg}/${REPO}:1.0.1`]).status, 0);
  assert.equal(kiln(home, ["push", "hello:1.0.2", `${reg}/${REPO}:1.0.2`]).status, 0);
  const bad = kiln(home, ["sign", `${reg}/${REPO}:1.0.2`, "--json"], { KILN_GNUPGHOME: other });
  assert.equal(bad.status, 0, bad.stderr);
  assert.equal((JSON.parse(bad.stdout) as { fingerprint: string }).fingerprint, wrong);

  const policy = join(dir, "verify");
  const pol = kiln(home, ["keys", "policy", "--registry", reg, "--out", policy]);
  assert.equal(pol.status, 0, pol.stderr);
  const pj = JSON.parse(await readFile(join(policy, "policy.json"), "utf8")) as { default: { type: string }[] };
  assert.deepEqual(pj.default, [{ type: "reject" }]);

  const ok = skopeoCopy(policy, `${reg}/${REPO}:1.0.0`, join(dir, "copy-signed"));
  assert.equal(ok.status, 0, ok.out);
  assert.match(await readFile(join(dir, "copy-signed", "manifest.json"), "utf8"), /"layers"/);
  const unsigned = skopeoCopy(policy, `${reg}/${REPO}:1.0.1`, join(dir, "copy-unsigned"));
  assert.notEqual(unsigned.status, 0);
  assert.match(unsigned.out, /A signature was required, but no signature exists/);
  const wrongKey = skopeoCopy(policy, `${reg}/${REPO}:1.0.2`, join(dir, "copy-wrong"));
  assert.notEqual(wrongKey.status, 0);
  assert.match(wrongKey.out, /Invalid GPG signature|not accepted|signed by an unknown key|key .* not/i);
  console.log(`# skopeo: signed accepted; unsigned refused (${unsigned.out.trim().split("\n").pop()}); wrong key refused (${wrongKey.out.trim().split("\n").pop()})`);

  // The signature travels: another home pulls the image and gets it into its own lookaside.
  const homeB = join(dir, "home-b");
  const pub = join(dir, "kiln.gpg");
  assert.equal(kiln(home, ["keys", "export", fpr, "--out", pub]).status, 0);
  const imp = kiln(homeB, ["keys", "import", pub, "--json"]);
  assert.equal(imp.status, 0, imp.stderr);
  assert.deepEqual(JSON.parse(imp.stdout), { imported: [fpr] });
  keyrings.push(join(homeB, "gnupg"));
  const pulled = kiln(homeB, ["pull", `${reg}/${REPO}:1.0.0`, "--json"]);
  assert.equal(pulled.status, 0, pulled.stderr);
  const p = JSON.parse(pulled.stdout) as { referrers: { pulled: { artifactType: string }[] }; lookaside: string[] };
  assert.deepEqual(p.referrers.pulled.map((d) => d.artifactType).sort(), [
    "application/vnd.cyclonedx+json",
    "application/vnd.dev.kiln.provenance.dsse+json",
    "application/vnd.dev.kiln.simple-signing.v1+pgp",
    "application/vnd.in-toto+json",
  ]);
  assert.equal(p.lookaside.length, 1);
  assert.ok((await readFile(p.lookaside[0]!)).equals(await readFile(s.signed.lookasideFile)), "the same signature bytes");
  const policyB = join(dir, "verify-b");
  assert.equal(kiln(homeB, ["keys", "policy", "--registry", reg, "--key", fpr, "--out", policyB]).status, 0);
  const okB = skopeoCopy(policyB, `${reg}/${REPO}:1.0.0`, join(dir, "copy-b"));
  assert.equal(okB.status, 0, okB.out);
  assert.deepEqual(await readdir(join(homeB, "sigstore", reg, "kiln-it")), [`signed-${RUN}@sha256=${digests["1.0.0"]!.slice(7)}`]);

  // The deploy policy: kiln's key required, SBOM required. Unsigned and wrong-key images are refused
  // (exit 2, the rule and why), from the registry and from the store; the signed one passes.
  const yamlPath = join(ws.dir, "kiln.yaml");
  await writeFile(yamlPath, `${await readFile(yamlPath, "utf8")}\npolicy:\n  signedBy: [${fpr}]\n  requireSbom: true\n`);
  for (const [ref, why] of [
    [`${reg}/${REPO}:1.0.1`, /policy: signedBy: the image carries no signature/],
    [`${reg}/${REPO}:1.0.2`, /policy: signedBy: no signature by a trusted key \(.*signed by a key that is not trusted\)/],
    ["hello:1.0.1", /signedBy: the image carries no signature/],
  ] as const) {
    const d = kiln(home, ["deploy", ref]);
    assert.equal(d.status, 2, `${ref}: ${d.stderr}`);
    assert.match(d.stderr, /KILN_E_POLICY/);
    assert.match(d.stderr, why);
    assert.match(d.stderr, /hint: sign it \(kiln sign\)/);
  }
  // In a home that only pulled (the public key imported), the registry's wrong-key image is refused too.
  const dB = kiln(homeB, ["deploy", `${reg}/${REPO}:1.0.2`]);
  assert.equal(dB.status, 2, dB.stderr);
  assert.match(dB.stderr, /KILN_E_POLICY.*signedBy/);
  // The signed image passes the policy; the deploy then needs the controller (not started here).
  const dOk = kiln(homeB, ["deploy", `${reg}/${REPO}:1.0.0`]);
  assert.doesNotMatch(dOk.stderr, /KILN_E_POLICY/);
  assert.match(dOk.stderr, /KILN_E_CONTROLLER|controller/i);
  // kiln audit reports the verdict.
  const pass = kiln(homeB, ["audit", digests["1.0.0"]!, "--policy-only", "--json"]);
  assert.equal(pass.status, 0, pass.stderr);
  const v = JSON.parse(pass.stdout) as { policy: { ok: boolean; rules: { rule: string; ok: boolean; reason: string }[] } };
  assert.equal(v.policy.ok, true);
  assert.deepEqual(v.policy.rules.map((r) => [r.rule, r.ok]), [["signedBy", true], ["requireSbom", true]]);
  assert.match(v.policy.rules[0]!.reason, new RegExp(`signed by ${fpr} for ${reg}/${REPO}:1\\.0\\.0`));
  const fail = kiln(home, ["audit", "hello:1.0.2", "--policy-only"]);
  assert.equal(fail.status, 1, fail.stderr);
  assert.match(fail.stdout, /policy +FAIL\n +FAIL signedBy/);

  // The provenance statement was signed the same way: it verifies with kiln's key here and in the
  // home that only pulled, and not with the other key.
  for (const h of [home, homeB]) {
    const pv = kiln(h, ["provenance", digests["1.0.0"]!, "--key", fpr, "--json"]);
    assert.equal(pv.status, 0, pv.stderr);
    const j = JSON.parse(pv.stdout) as { verifiedBy: string[]; statement: { subject: { digest: { sha256: string } }[]; predicate: { buildDefinition: { externalParameters: { kiln_yaml: { digest: { sha256: string } } } } } } };
    assert.deepEqual(j.verifiedBy, [fpr]);
    assert.equal(j.statement.subject[0]!.digest.sha256, digests["1.0.0"]!.slice(7));
    assert.match(j.statement.predicate.buildDefinition.externalParameters.kiln_yaml.digest.sha256, /^[0-9a-f]{64}$/);
  }
  const pvWrong = kiln(home, ["provenance", "hello:1.0.0", "--key", wrong], { KILN_GNUPGHOME: other });
  assert.equal(pvWrong.status, 1, pvWrong.stderr);
  assert.match(pvWrong.stdout, /signed +NO signature by .*not trusted/);

  // No signing key: exit 2 with a hint.
  const none = kiln(join(dir, "empty-home"), ["sign", `${reg}/${REPO}:1.0.1`]);
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /kiln keys generate/);
  keyrings.push(join(dir, "empty-home", "gnupg"));
});
