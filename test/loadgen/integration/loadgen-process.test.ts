// The load generator as a process (and through its client) against a tiny
// local server: exact counts, failures, every way a run ends, refusal.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isKilnError } from "../../../src/errors.js";
import { diffTotals, startLoad } from "../../../src/loadgen/client.js";
import type { FinalTotals } from "../../../src/loadgen/stats.js";

const MAIN = new URL("../../../src/loadgen/main.js", import.meta.url).pathname;


interface Target {
  server: Server;
  url: string;
  received: number;
  mode: "hello" | "flaky" | "slow" | "backwards";
}
const target: Target = { server: createServer(), url: "", received: 0, mode: "hello" };

before(async () => {
  let counter = 0;
  target.server = createServer((req, res) => {
    target.received += 1;
    const n = target.received;
    switch (target.mode) {
      case "hello":
        counter += 1;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ version: n % 2 ? "1.0.0" : "2.0.0", instance: "t", counter }));
        return;
      case "flaky":
        if (n % 4 === 0) return void req.socket.destroy();
        if (n % 4 === 1) {
          res.statusCode = 503;
          return void res.end("overloaded");
        }
        res.end("fine");
        return;
      case "slow":
        setTimeout(() => res.end("slow"), 50);
        return;
      case "backwards":
        res.end(JSON.stringify({ version: "1", counter: 1000 - n }));
        return;
    }
  });
  await new Promise<void>((r) => target.server.listen(0, "127.0.0.1", r));
  target.url = `http://127.0.0.1:${(target.server.address() as AddressInfo).port}/`;
});
after(() => {
  target.server.closeAllConnections();
  target.server.close();
});

function reset(mode: Target["mode"]) {
  target.mode = mode;
  target.received = 0;
}

/** Runs main.js to completion; returns its JSON lines and exit code. */
async function runMain(args: string[], opts: { signalAfterMs?: number; stdinLines?: string[]; closeStdin?: boolean } = {}) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let started = false;
  child.stdout.on("data", (d: Buffer) => {
    out += d;
    if (started) return;
    // act once the generator has reported, i.e. is running (startup time varies under load)
    started = true;
    if (opts.signalAfterMs !== undefined) setTimeout(() => child.kill("SIGTERM"), opts.signalAfterMs);
    for (const l of opts.stdinLines ?? []) child.stdin.write(l + "\n");
    if (opts.closeStdin) child.stdin.end();
  });
  child.stderr.on("data", (d: Buffer) => (err += d));
  const hardStop = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  clearTimeout(hardStop);
  const lines = out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, lines, err, last: lines[lines.length - 1] as unknown as FinalTotals };
}

describe("load generator process", () => {
  test("stops by itself at --max-requests, with exact counts", async () => {
    reset("hello");
    const r = await runMain(["--url", target.url, "--concurrency", "4", "--max-requests", "300", "--duration-ms", "20000", "--report-every-ms", "20"]);
    assert.equal(r.code, 0);
    assert.equal(r.last.done, true);
    assert.equal(r.last.reason, "max-requests");
    assert.equal(r.last.requests, 300);
    assert.equal(target.received, 300, "never more requests than the bound");
    assert.equal(r.last.failed, 0);
    assert.deepEqual(r.last.byStatus, { "200": 300 });
    assert.equal((r.last.byVersion["1.0.0"] ?? 0) + (r.last.byVersion["2.0.0"] ?? 0), 300);
    assert.equal(r.last.maxCounter, 300);
    assert.equal(r.last.counterWentBackwards, false);
    assert.deepEqual(r.last.errors, []);
    const periodic = r.lines.filter((l) => l.done === undefined);
    for (let i = 1; i < periodic.length; i++) assert.ok((periodic[i]?.requests as number) >= (periodic[i - 1]?.requests as number));
  });

  test("counts network errors and non-2xx as failures and describes the first 20", async () => {
    reset("flaky");
    const r = await runMain(["--url", target.url, "--concurrency", "2", "--max-requests", "200", "--duration-ms", "20000"]);
    assert.equal(r.last.requests, 200);
    const bad503 = r.last.byStatus["503"] ?? 0;
    const netErr = r.last.byStatus.error ?? 0;
    assert.ok(bad503 > 0 && netErr > 0, JSON.stringify(r.last.byStatus));
    assert.equal(r.last.failed, bad503 + netErr);
    assert.equal(r.last.errors.length, 20);
    assert.ok(r.last.errors.some((e) => e.includes("HTTP 503: overloaded")));
  });

  test("stops by itself at --duration-ms", async () => {
    reset("slow");
    const t0 = Date.now();
    const r = await runMain(["--url", target.url, "--concurrency", "2", "--duration-ms", "300"]);
    const took = Date.now() - t0;
    assert.equal(r.last.reason, "duration");
    assert.ok(r.last.requests > 0 && r.last.requests < 40, String(r.last.requests));
    assert.ok(took < 5000, `took ${took}ms`);
  });

  test("SIGTERM, a stop command and a closed stdin each end the run with final totals", async () => {
    reset("slow");
    const bySignal = await runMain(["--url", target.url, "--duration-ms", "60000", "--report-every-ms", "50"], { signalAfterMs: 100 });
    assert.equal(bySignal.code, 0);
    assert.equal(bySignal.last.reason, "signal");
    const byCommand = await runMain(["--url", target.url, "--duration-ms", "60000", "--report-every-ms", "50"], { stdinLines: ['{"cmd":"snapshot","id":7}', '{"cmd":"stop"}'] });
    assert.equal(byCommand.last.reason, "stdin");
    assert.ok(byCommand.lines.some((l) => l.snapshot === 7 && typeof l.requests === "number"));
    const byClose = await runMain(["--url", target.url, "--duration-ms", "60000", "--report-every-ms", "50", "--stop-on-stdin-close"], { closeStdin: true });
    assert.equal(byClose.last.reason, "stdin-closed");
  });

  test("detects a counter going backwards", async () => {
    reset("backwards");
    const r = await runMain(["--url", target.url, "--concurrency", "1", "--max-requests", "5"]);
    assert.equal(r.last.counterWentBackwards, true);
    assert.equal(r.last.maxCounter, 999);
  });

  test("refuses a non-loopback URL", async () => {
    const r = await runMain(["--url", "http://example.com/", "--max-requests", "1"]);
    assert.equal(r.code, 2);
    assert.match(String(r.lines[0]?.error), /refusing to send load to example\.com/);
    assert.throws(() => startLoad({ url: "http://192.0.2.1/" }), (e) => isKilnError(e) && e.code === "KILN_E_USAGE" && !!e.hint);
  });
});

describe("startLoad client", () => {
  test("snapshots grow, stop returns final totals, and the generator exits", async () => {
    reset("hello");
    const load = startLoad({ url: target.url, concurrency: 4, durationMs: 30_000, reportEveryMs: 50 });
    // Until its first report: a node process can take over 400 ms to start on a busy CI host
    // (the test once waited a fixed 400 ms, and failed there). Bounded: 15 s.
    let a = await load.snapshot();
    for (let i = 0; i < 300 && a.requests === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      a = await load.snapshot();
    }
    await new Promise((r) => setTimeout(r, 200));
    const b = await load.snapshot();
    assert.ok(a.requests > 0, "load is running");
    assert.ok(b.requests > a.requests);
    assert.ok(load.mark().requests >= b.requests);
    const step = diffTotals(a, b);
    assert.equal(step.failed, 0);
    assert.equal(step.requests, b.requests - a.requests);
    const final = await load.stop();
    assert.equal(final.done, true);
    assert.equal(final.reason, "stdin");
    assert.ok(final.requests >= b.requests);
    assert.equal(final.failed, 0);
    assert.equal(final.counterWentBackwards, false);
    assert.deepEqual(await load.snapshot(), final, "after the end a snapshot is the final totals");
    const received = target.received;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(target.received, received, "no request after stop");
    assert.throws(() => process.kill(load.pid ?? -1, 0), "the generator has exited");
  });

  test("done resolves when the generator reaches its bound by itself", async () => {
    reset("hello");
    const load = startLoad({ url: target.url, concurrency: 2, maxRequests: 50 });
    const final = await load.done;
    assert.equal(final.reason, "max-requests");
    assert.equal(final.requests, 50);
  });
});
