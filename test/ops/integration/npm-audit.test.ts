// `kiln outdated --npm-audit` runs the real npm (`npm audit --json --package-lock-only`) over a
// lockfile rebuilt from the SBOM. The registry is a stand-in on 127.0.0.1 (npm_config_registry)
// that answers npm's bulk advisory request and the packument npm reads for the fix; an
// unreachable registry is a note in the report, never an error.

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { findOutdated } from "../../../src/ops/outdated.js";
import { freeLoopbackPort } from "../../../src/net.js";
import { hasTool, requireTool } from "../../integration/support.js";
import { world } from "../outdated-fixtures.js";

const LOCK = JSON.stringify({ name: "fixture", lockfileVersion: 3, packages: { "": { name: "fixture" }, "node_modules/pg": { version: "8.7.0" }, "node_modules/left-pad": { version: "1.3.0" } } });

let server: Server | undefined;
const saved = process.env.npm_config_registry;
after(() => {
  server?.close();
  if (saved === undefined) delete process.env.npm_config_registry;
  else process.env.npm_config_registry = saved;
});

test("--npm-audit: npm's advisories for the image's packages, with the fix npm names; an unreachable registry is a note", async (t) => {
  if (!requireTool(hasTool("npm"), "npm is not installed", t)) return;
  const asked: string[] = [];
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      asked.push(`${req.method} ${req.url} ${body.toString()}`);
      res.setHeader("content-type", "application/json");
      if (req.url?.includes("/-/npm/v1/security/advisories/bulk")) {
        return res.end(JSON.stringify({ pg: [{ id: 1, url: "https://github.com/advisories/GHSA-test-0001", title: "pg: test advisory", severity: "high", vulnerable_versions: "<8.7.1", cwe: [], cvss: { score: 0, vectorString: null } }] }));
      }
      if (req.url === "/pg") {
        const v = (version: string) => ({ name: "pg", version, dist: { tarball: `http://127.0.0.1:1/pg-${version}.tgz` } });
        return res.end(JSON.stringify({ name: "pg", "dist-tags": { latest: "8.7.1" }, versions: { "8.7.0": v("8.7.0"), "8.7.1": v("8.7.1") } }));
      }
      res.statusCode = 404;
      res.end("{}");
    });
  });
  const port = await freeLoopbackPort();
  await new Promise<void>((r) => server!.listen(port, "127.0.0.1", r));
  process.env.npm_config_registry = `http://127.0.0.1:${port}/`;

  const w = await world(t, LOCK);
  const r = await findOutdated({ store: w.store, home: w.home, npmAudit: true, hostOsRelease: "" });
  assert.ok(asked.some((a) => a.startsWith("POST /-/npm/v1/security/advisories/bulk") && a.includes('"pg":["8.7.0"]')), asked.join("\n"));
  assert.deepEqual(r.findings.filter((f) => f.kind === "npm-advisory").map((f) => [f.subject, f.installed, f.available, f.advisories?.map((a) => a.id), f.carriers.map((c) => c.release)]), [["pg", "8.7.0", "8.7.1", ["GHSA-test-0001"], ["r1"]]]);
  assert.equal(r.checks.find((c) => c.check === "npm")?.source, "npm audit (the npm registry's advisories)");

  process.env.npm_config_registry = "http://127.0.0.1:1/";
  const down = await findOutdated({ store: w.store, home: w.home, npmAudit: true, hostOsRelease: "" });
  assert.equal(down.findings.filter((f) => f.kind === "npm-advisory").length, 0);
  assert.match(down.checks.find((c) => c.check === "npm")?.note ?? "", /npm audit/);
});
