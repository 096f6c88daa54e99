// Staging before production, the same bytes: a service deploys to staging, drills green, and is
// promoted to production under load with 0 failed requests and the identical digest and config
// hash; a release that has not passed a drill is refused when kiln.yaml requires one, and one the
// pre-promotion hook refuses changes nothing.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import type { ReleaseView, StatusView } from "../../../src/controller/types.js";
import { startLoad } from "../../../src/loadgen/client.js";
import { freeLoopbackPort } from "../../../src/net.js";
import { helloWorkspace, kiln, kilnDown, requireTool, until } from "../../integration/support.js";

function hasBwrap(): boolean {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("environments and promote-release (integration)", () => {
  it("staging → drill → production under load: identical digest and config hash; an undrilled release is refused", async (t) => {
    if (!requireTool(hasBwrap(), "bubblewrap is not installed", t)) return;
    const ws = await helloWorkspace("kiln-promote-");
    const staging = await freeLoopbackPort();
    const production = await freeLoopbackPort();
    const f = join(ws.dir, "kiln.yaml");
    const doc = parseDocument(readFileSync(f, "utf8"));
    doc.set("environments", { staging: { instances: 2, listen: `127.0.0.1:${staging}` }, production: { instances: 3, listen: `127.0.0.1:${production}`, env: { TIER: "production" } } });
    doc.set("promotion", { requireDrill: true });
    // refuses while a file named "block" exists; else keeps the facts it was given
    doc.set("hooks", { "pre-promotion": "if [ -e block ]; then echo not today; exit 3; fi; env | grep '^KILN_' > promotion-facts.env" });
    writeFileSync(f, doc.toString());
    const run = async (args: string[], timeoutMs = 5 * 60_000) => kiln(args, { cwd: ws.dir, timeoutMs });
    const must = async (args: string[], timeoutMs?: number) => {
      const r = await run(args, timeoutMs);
      assert.equal(r.code, 0, `kiln ${args.join(" ")}: ${r.stdout}${r.stderr}`);
      return r;
    };
    const status = async (env: string) => JSON.parse((await must(["status", "--json", "--env", env])).stdout) as StatusView;
    const history = async (env: string) => (JSON.parse((await must(["history", "--json", "--env", env])).stdout) as { releases: ReleaseView[] }).releases;
    let load: ReturnType<typeof startLoad> | undefined;
    try {
      await must(["bake"]);
      await must(["up", "--detach", "--env", "staging"]);
      await must(["up", "--detach", "--env", "production"]);

      // v1: staging, drilled, promoted (production's first release).
      await must(["deploy", "--env", "staging"]);
      await must(["drill", "--env", "staging", "--json"], 8 * 60_000);
      await must(["promote-release", "--from", "staging", "--to", "production"]);
      assert.equal((await status("production")).desiredInstances, 3, "production's own instance count applies");

      // v2 baked and live in staging, but not drilled: refused, exit 2, production unchanged.
      ws.release("2.0.0");
      await must(["bake"]);
      await must(["deploy", "--env", "staging"]);
      const before = await history("production");
      const refused = await run(["promote-release", "--to", "production"]);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /KILN_E_POLICY: cannot promote from staging to production/);
      assert.match(refused.stderr, /promotion\.requireDrill: r\d+ \(sha256:[0-9a-f]{12}\) has no drill in staging/);
      assert.deepEqual(await history("production"), before, "nothing changed in production");

      // Drilled, but the pre-promotion hook refuses: exit 1, KILN_E_HOOK, production unchanged.
      await must(["drill", "--env", "staging", "--json"], 8 * 60_000);
      writeFileSync(join(ws.dir, "block"), "");
      const hooked = await run(["promote-release", "--to", "production"]);
      assert.equal(hooked.code, 1, hooked.stdout + hooked.stderr);
      assert.match(hooked.stderr, /KILN_E_HOOK/);
      assert.match(hooked.stdout + hooked.stderr, /\[pre-promotion\] not today/);
      assert.deepEqual(await history("production"), before, "nothing changed in production");
      rmSync(join(ws.dir, "block"));

      // Promoted under load on production.
      load = startLoad({ url: `http://127.0.0.1:${production}/`, concurrency: 4, durationMs: 5 * 60_000 });
      await until(async () => (await load!.snapshot()).requests > 50, 30_000, "load on production to flow");
      const start = await load.snapshot();
      const p = await must(["promote-release", "--from", "staging", "--to", "production", "--json", "--reason", "drilled in staging"]);
      const end = await load.snapshot();
      const result = JSON.parse(p.stdout) as { outcome: string; identical: boolean; from: { release: string; digest: string; configHash: string }; to: { release: string; digest: string; configHash: string; promotedFrom: { environment: string; release: string } } };
      assert.equal(result.outcome, "live");
      assert.equal(result.identical, true);
      assert.ok(end.requests - start.requests > 50, `load ran during the promotion (${end.requests - start.requests})`);
      assert.equal(end.failed - start.failed, 0, "0 failed requests on production during the promotion");

      // What the two environments' state says, independently of the verb's own report.
      const st = (await status("staging")).release!;
      const pr = (await status("production")).release!;
      assert.equal(pr.version, "2.0.0");
      assert.equal(pr.digest, st.digest, "identical digest");
      assert.equal(pr.configHash, st.configHash, "identical config hash");
      assert.deepEqual(pr.promotedFrom && { environment: pr.promotedFrom.environment, release: pr.promotedFrom.release }, { environment: "staging", release: st.id });
      const text = await must(["history", "--env", "production"]);
      assert.match(text.stdout, new RegExp(`promoted from staging ${st.id}`));
      // The hook was told what it gates, and the audit trail names the environment and the reason.
      assert.ok(existsSync(join(ws.dir, "promotion-facts.env")), "the pre-promotion hook ran");
      const facts = Object.fromEntries(readFileSync(join(ws.dir, "promotion-facts.env"), "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      assert.equal(facts.KILN_HOOK, "pre-promotion");
      assert.equal(facts.KILN_FROM_ENV, "staging");
      assert.equal(facts.KILN_ENV, "production");
      assert.equal(facts.KILN_DIGEST, st.digest);
      assert.equal(facts.KILN_REASON, "drilled in staging");
      const changes = (JSON.parse((await must(["history", "--json", "--env", "production"])).stdout) as { changes: { action: string; env?: string; reason?: string; digest?: string; command: string }[] }).changes;
      const promoted = changes.find((c) => c.action === "deploy" && c.digest === st.digest);
      assert.ok(promoted, `a deploy row for ${st.digest}: ${JSON.stringify(changes)}`);
      assert.equal(promoted.env, "production");
      assert.equal(promoted.reason, "drilled in staging");
      assert.match(promoted.command, /promote-release/);
      assert.ok(changes.some((c) => c.action === "hook pre-promotion"), "the hook's outcome is in the trail");
      const served = await fetch(`http://127.0.0.1:${production}/`).then((r) => r.json() as Promise<{ version: string; instance: string }>);
      assert.equal(served.version, "2.0.0");
      assert.match(served.instance, /^hello-production-/);
    } finally {
      if (load) await load.stop();
      await kilnDown(["--env", "staging"], { cwd: ws.dir, timeoutMs: 5 * 60_000 });
      await kilnDown(["--env", "production"], { cwd: ws.dir, timeoutMs: 5 * 60_000 });
      rmSync(ws.dir, { recursive: true, force: true });
    }
  });
});
