// The drill's pure parts: where its load goes (loadTarget's doc comment rows) and the Markdown report.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { drillMarkdown, loadTarget, type DrillReport } from "../../src/ops/drill.js";

describe("loadTarget (doc comment rows)", () => {
  const rows: Array<[string, string, string | undefined]> = [
    ["127.0.0.1:8080", "/", "http://127.0.0.1:8080/"],
    ["0.0.0.0:80", "/api", "http://127.0.0.1:80/api"],
    ["[::]:8080", "/", "http://[::1]:8080/"],
    ["localhost:8080", "/x?y=1", "http://127.0.0.1:8080/x?y=1"],
    ["10.0.0.5:8080", "/", undefined],
    ["app.example.com:443", "/", undefined],
  ];
  for (const [listen, path, want] of rows) it(`${listen} ${path} → ${want}`, () => assert.equal(loadTarget(listen, path), want));
});

describe("drillMarkdown", () => {
  const report: DrillReport = {
    schemaVersion: 1, id: "drill-1", service: "hello-staging", environment: "staging",
    release: { id: "r3", ref: "hello:1.0.0", digest: "sha256:" + "a".repeat(64), configHash: "sha256:" + "b".repeat(64) },
    target: "http://127.0.0.1:8081/", passed: false, startedAt: "2026-12-02T23:00:00.000Z", durationMs: 12_345,
    steps: [
      { name: "bake", outcome: "ok", durationMs: 300, requests: 0, failed: 0, detail: "hello:1.0.0 (cached)" },
      { name: "deploy", outcome: "failed", durationMs: 9000, requests: 0, failed: 0, detail: "a | pipe\nand a newline" },
      { name: "rolling replacement", outcome: "skipped", durationMs: 0, requests: 0, failed: 0, detail: "deploy failed" },
    ],
    totals: { requests: 0, failed: 0 }, reason: "deploy: a | pipe",
  };
  it("has the verdict, the release, and one escaped row per step", () => {
    const md = drillMarkdown(report);
    assert.match(md, /^## kiln drill: failed ❌$/m);
    assert.match(md, /environment `staging`/);
    assert.match(md, /`hello:1\.0\.0` \(r3\), digest `sha256:a{64}`, config hash `sha256:b{64}`/);
    assert.match(md, /^\| deploy \| ❌ failed \| 9\.0 s \| 0 \| 0 \| a \\\| pipe and a newline \|$/m);
    assert.match(md, /^\| rolling replacement \| ⏭ skipped \|/m);
    assert.equal(md.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| step")).length, 3);
    assert.match(drillMarkdown({ ...report, passed: true, reason: undefined }), /^## kiln drill: passed ✅$/m);
  });
});
