// kiln audit with the Docker backend (a container with a writable root, docker diff)
// on the two examples: hello passes, stateful (baked as root) fails.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { auditImage, type AuditReport } from "../../../src/audit/index.js";
import { dockerSocket } from "../../support/services.js";
import { bakeExamples, type Baked } from "./helpers.js";

let baked: Baked | undefined;
after(async () => baked?.cleanup());
const quiet = () => undefined;

function kinds(r: AuditReport): string[] {
  return r.findings.map((f) => `${f.severity} ${f.kind} ${"path" in f && f.path ? f.path : ""}`.trim());
}

test("docker: examples/hello passes, examples/stateful fails", { timeout: 240_000 }, async (t) => {
  if (!dockerSocket(t)) return;
  const b = (baked = await bakeExamples());

  await t.test("hello", async () => {
    const r = await auditImage({ store: b.store, digest: b.hello.digest, ref: b.hello.ref, spec: b.hello.loaded.spec, provider: "docker", smoke: [{ method: "GET", path: "/", where: "test" }], log: quiet });
    t.diagnostic(`hello (docker): ${r.verdict}, ${r.durationMs} ms, findings: ${JSON.stringify(kinds(r))}`);
    assert.deepEqual(kinds(r), []);
    assert.equal(r.verdict, "pass");
    assert.deepEqual(r.runs.map((x) => [x.phase, x.healthy, x.smoke.every((s) => s.ok)]), [["first-start", true, true], ["after-restart", true, true]]);
  });

  await t.test("stateful", async () => {
    const r = await auditImage({ store: b.store, digest: b.stateful.digest, ref: b.stateful.ref, spec: b.stateful.loaded.spec, provider: "docker", smoke: b.stateful.smoke, log: quiet });
    t.diagnostic(`stateful (docker): ${r.verdict}, ${r.durationMs} ms, findings: ${JSON.stringify(kinds(r))}`);
    assert.deepEqual(kinds(r), [
      "fail write-outside-volumes /app/access.log",
      "fail write-outside-volumes /var/lib/stateful/sessions.json",
      "fail runs-as-root",
      "fail secret-file /app/config/deploy_key",
      "warn secret-file /app/config/.env",
      "warn state-across-restart /var/lib/stateful/sessions.json",
    ]);
    assert.equal(r.verdict, "fail");
    assert.ok(r.observed.listeningPorts.includes(8080), "listening ports come from the container's own sockets");
  });
});
