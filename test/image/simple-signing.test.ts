// The pure parts of signing: the simple-signing payload (the rows of its doc
// comment), the lookaside layout, the verifier configuration, gpg's colon
// listing. Spawns nothing (gpg and skopeo run in integration/signing.test.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { gpgArgs, parseKeyList } from "../../src/image/gpg.js";
import { identityRepository, lookasidePath, parseSigningPayload, signingPayload, verifierConfig } from "../../src/image/simple-signing.js";

const D = `sha256:${"ab".repeat(32)}`;

test("signingPayload: the exact bytes containers/image parses; parseSigningPayload reads them back", () => {
  const p = signingPayload("127.0.0.1:5000/notes:1.0.0", D, "kiln 0.1.0", 1700000000.9);
  assert.equal(
    p.toString(),
    `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/notes:1.0.0"},"image":{"docker-manifest-digest":"${D}"},"type":"atomic container signature"},"optional":{"creator":"kiln 0.1.0","timestamp":1700000000}}`,
  );
  assert.deepEqual(parseSigningPayload(p), { ok: true, identity: "127.0.0.1:5000/notes:1.0.0", digest: D, timestamp: 1700000000 });
  assert.throws(() => signingPayload("r/x:1", "sha256:nope", "k", 0));
});

test("parseSigningPayload refuses what is not an atomic container signature", () => {
  for (const [bytes, reason] of [
    ["not json", /not JSON/],
    ['{"critical":{"type":"other"}}', /not an "atomic container signature"/],
    ['{"critical":{"type":"atomic container signature","identity":{},"image":{}}}', /no identity or digest/],
    [`{"critical":{"type":"atomic container signature","identity":{"docker-reference":"r/x:1"},"image":{"docker-manifest-digest":"md5:1"}}}`, /no identity or digest/],
  ] as const) {
    const r = parseSigningPayload(Buffer.from(bytes));
    assert.equal(r.ok, false, bytes);
    assert.match((r as { reason: string }).reason, reason);
  }
});

test("lookasidePath and identityRepository: the doc comments' rows", () => {
  assert.equal(lookasidePath("notes", D, 1), `notes@sha256=${"ab".repeat(32)}/signature-1`);
  assert.equal(lookasidePath("team/api", D, 2), `team/api@sha256=${"ab".repeat(32)}/signature-2`);
  const rows: [string, ReturnType<typeof identityRepository>][] = [
    ["127.0.0.1:5000/team/api:1.0.0", { registry: "127.0.0.1:5000", repository: "team/api" }],
    [`127.0.0.1:5000/notes@${D}`, { registry: "127.0.0.1:5000", repository: "notes" }],
    ["ghcr.io/acme/x", { registry: "ghcr.io", repository: "acme/x" }],
    ["notes:1.0.0", undefined],
  ];
  for (const [id, want] of rows) assert.deepEqual(identityRepository(id), want, id);
});

test("verifierConfig: reject by default, signedBy the key for the registry, the lookaside for reading and staging", () => {
  const c = verifierConfig("127.0.0.1:5000", "/etc/kiln/kiln.gpg", "file:///var/lib/kiln/sigstore/127.0.0.1:5000");
  assert.deepEqual(c.policy, { default: [{ type: "reject" }], transports: { docker: { "127.0.0.1:5000": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/etc/kiln/kiln.gpg" }] } } });
  assert.equal(
    c.registriesD,
    'docker:\n  "127.0.0.1:5000":\n    lookaside: "file:///var/lib/kiln/sigstore/127.0.0.1:5000"\n    lookaside-staging: "file:///var/lib/kiln/sigstore/127.0.0.1:5000"\n',
  );
});

test("parseKeyList: primary fingerprints, first uid, secret flag; subkeys ignored", () => {
  const text = [
    "tru::1:1700000000:0:3:1:5",
    "pub:u:255:22:DAAFB84ABFA5F65C:1764700000:::u:::scSC:::::ed25519:::0:",
    "fpr:::::::::2357CC5420A2F8325626FA35DAAFB84ABFA5F65C:",
    "grp:::::::::AAAA:",
    "uid:u::::1764700000::HASH::kiln <kiln\\x3avm>::::::::::0:",
    "sub:u:255:18:1111111111111111:1764700000::::::e:::::cv25519::",
    "fpr:::::::::9999999999999999999999999999999999999999:",
    "pub:-:3072:1:0123456789ABCDEF:1600000000:::-:::scESC::::::::0:",
    "fpr:::::::::00000000000000000000000000000000DEADBEEF:",
  ].join("\n");
  const keys = parseKeyList(text, true);
  assert.deepEqual(
    keys.map((k) => [k.fingerprint, k.uid, k.secret, k.algorithm, k.created]),
    [
      ["2357CC5420A2F8325626FA35DAAFB84ABFA5F65C", "kiln <kiln:vm>", true, "ed25519", new Date(1764700000 * 1000).toISOString().slice(0, 10)],
      ["00000000000000000000000000000000DEADBEEF", "", true, "rsa", new Date(1600000000 * 1000).toISOString().slice(0, 10)],
    ],
  );
});

test("gpgArgs: batch mode in the given homedir, never the user's", () => {
  for (const argv of [gpgArgs.generate("/h", "k <k@x>"), gpgArgs.list("/h", true), gpgArgs.exportKeys("/h", ["F"], true), gpgArgs.importKeys("/h"), gpgArgs.sign("/h", "F"), gpgArgs.verify("/h")]) {
    assert.deepEqual(argv.slice(0, 3), ["--homedir", "/h", "--batch"]);
  }
  assert.deepEqual(gpgArgs.generate("/h", "k <k@x>").slice(-4), ["k <k@x>", "ed25519", "sign", "never"]);
  assert.ok(gpgArgs.sign("/h", "F").includes("--sign") && !gpgArgs.sign("/h", "F").includes("--detach-sign"), "a signed message, not a detached signature");
});
