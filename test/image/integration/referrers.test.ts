// The SBOM (and the provenance statement) travel with the image: examples/notes baked through the CLI, pushed
// to the real registry (Debian's docker-registry at KILN_TEST_REGISTRY, which
// has no referrers API: kiln keeps the distribution-spec fallback index at tag
// sha256-<hex>), the local store deleted, pulled into a fresh one, and
// `kiln sbom` prints the same bytes — a schema-valid CycloneDX document.
// Then a hostile referrers list: an artifact that refers to another image is
// not kept, and the image's pull still succeeds.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { canonicalBytes } from "../../../src/image/digest.js";
import { openStore } from "../../../src/image/index.js";
import { artifactManifest, EMPTY_CONFIG, referrersTag } from "../../../src/image/referrers.js";
import { parseRegistryRef, pullImage, RegistryClient } from "../../../src/image/registry/index.js";
import { fetchReferrersIndex, putManifest, uploadMonolithic } from "../../../src/image/registry/push.js";
import { MEDIA_TYPE } from "../../../src/image/types.js";
import { KILN_BIN as CLI } from "../../support/kiln-bin.js";
import { installNotesDependencies } from "../../support/notes-workspace.js";
import { registryAddress } from "../../support/services.js";
import { repoRoot } from "../../integration/support.js";
import { cyclonedxErrors } from "../cyclonedx-schema.js";
import { tempDir } from "../helpers.js";

const RUN = randomBytes(4).toString("hex");

function kiln(home: string, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, KILN_HOME: home }, encoding: "utf8", timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("examples/notes: push carries the SBOM, a pull into an empty store brings it back byte for byte; a referrer of another image is refused", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const dir = await tempDir(t, "kiln-referrers-it-");
  const app = join(dir, "notes");
  for (const f of ["kiln.yaml", "server.js", "package.json", "package-lock.json"]) await cp(join(repoRoot, "examples/notes", f), join(app, f), { recursive: true });
  await cp(join(await installNotesDependencies(), "node_modules"), join(app, "node_modules"), { recursive: true, verbatimSymlinks: true });

  const homeA = join(dir, "home-a");
  const baked = kiln(homeA, ["-f", join(app, "kiln.yaml"), "bake", "--json"]);
  assert.equal(baked.status, 0, baked.stderr);
  const digest = (JSON.parse(baked.stdout) as { digest: string }).digest;
  const sbomA = kiln(homeA, ["sbom", "notes:1.0.0", "--json"]);
  assert.equal(sbomA.status, 0, sbomA.stderr);

  const repo = `kiln-it/notes-${RUN}`;
  const pushed = kiln(homeA, ["push", "notes:1.0.0", `${reg}/${repo}`, "--json"]);
  assert.equal(pushed.status, 0, pushed.stderr);
  const p = JSON.parse(pushed.stdout) as { digest: string; referrers: { pushed: { artifactType: string; digest: string }[]; via: string } };
  assert.equal(p.digest, digest);
  assert.deepEqual(p.referrers.pushed.map((d) => d.artifactType).sort(), ["application/vnd.cyclonedx+json", "application/vnd.in-toto+json"], "the SBOM and the provenance statement");
  // This registry has no referrers API (404), so the list lives at the fallback tag.
  const api = await fetch(`http://${reg}/v2/${repo}/referrers/${digest}`);
  await api.body?.cancel();
  if (api.status === 404) {
    assert.equal(p.referrers.via, "tag");
    const tags = (await (await fetch(`http://${reg}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    assert.ok(tags.tags.includes(referrersTag(digest)), JSON.stringify(tags));
  } else {
    assert.equal(p.referrers.via, "api");
  }
  // A second push adds nothing to the list (the merge is idempotent).
  const again = kiln(homeA, ["push", "notes:1.0.0", `${reg}/${repo}`, "--json"]);
  assert.equal(again.status, 0, again.stderr);
  const client = new RegistryClient({ registry: reg, repository: repo, action: "pull" });
  if (p.referrers.via === "tag") assert.equal((await fetchReferrersIndex(client, referrersTag(digest)))?.manifests.length, 2);

  await rm(homeA, { recursive: true, force: true });
  const homeB = join(dir, "home-b");
  const pulled = kiln(homeB, ["pull", `${reg}/${repo}:1.0.0`, "--json"]);
  assert.equal(pulled.status, 0, pulled.stderr);
  const q = JSON.parse(pulled.stdout) as { digest: string; referrers: { pulled: { artifactType: string }[]; skipped: unknown[] } };
  assert.equal(q.digest, digest);
  assert.deepEqual(q.referrers.pulled.map((d) => d.artifactType).sort(), ["application/vnd.cyclonedx+json", "application/vnd.in-toto+json"]);
  assert.deepEqual(q.referrers.skipped, []);

  const sbomB = kiln(homeB, ["sbom", digest, "--json"]);
  assert.equal(sbomB.status, 0, sbomB.stderr);
  assert.equal(sbomB.stdout, sbomA.stdout, "the same SBOM, byte for byte");
  const doc = JSON.parse(sbomB.stdout) as { components: { name: string; purl?: string }[] };
  assert.deepEqual(cyclonedxErrors(doc), []);
  assert.ok(doc.components.some((c) => c.purl?.startsWith("pkg:npm/pg@")), "the notes lockfile's pg is listed");
  const text = kiln(homeB, ["sbom", digest]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^notes:1\.0\.0 sha256:/);

  // A hostile list: an artifact whose subject is another image, added to this image's fallback index.
  if (p.referrers.via === "tag") {
    const push = new RegistryClient({ registry: reg, repository: repo, action: "push" });
    const scratch = openStore(join(dir, "scratch"));
    const doc2 = await scratch.putBlob(Buffer.from("{\"not\":\"this image\"}"));
    await scratch.putBlob(Buffer.from("{}"));
    for (const b of [doc2, EMPTY_CONFIG]) await uploadMonolithic(push, scratch, { mediaType: "application/octet-stream", ...b }, undefined);
    const other = { mediaType: MEDIA_TYPE.manifest, digest: `sha256:${"ab".repeat(32)}`, size: 10 };
    const bytes = canonicalBytes(artifactManifest(other, "application/vnd.example+json", { mediaType: "application/vnd.example+json", ...doc2 }, {}));
    const stray = await scratch.putBlob(bytes);
    await putManifest(push, stray.digest, Buffer.from(bytes), MEDIA_TYPE.manifest, stray.digest);
    const index = (await fetchReferrersIndex(push, referrersTag(digest)))!;
    index.manifests.push({ mediaType: MEDIA_TYPE.manifest, digest: stray.digest, size: stray.size, artifactType: "application/vnd.example+json" } as never);
    const ib = Buffer.from(JSON.stringify(index));
    const { createHash } = await import("node:crypto");
    await putManifest(push, referrersTag(digest), ib, MEDIA_TYPE.index, "sha256:" + createHash("sha256").update(ib).digest("hex"));

    const homeC = openStore(join(dir, "home-c"));
    const r = await pullImage(homeC, parseRegistryRef(`${reg}/${repo}@${digest}`));
    assert.equal(r.digest, digest);
    assert.deepEqual(r.referrers.pulled.map((d) => d.artifactType).sort(), ["application/vnd.cyclonedx+json", "application/vnd.in-toto+json"]);
    assert.equal(r.referrers.skipped.length, 1);
    assert.equal(r.referrers.skipped[0]!.digest, stray.digest);
    assert.match(r.referrers.skipped[0]!.reason, /does not refer to/);
  }
});
