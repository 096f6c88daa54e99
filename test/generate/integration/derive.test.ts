import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { albHealthCheck, awsRefresh, goDuration, kubernetesRolling, nomadUpdate, swarmUpdate, userIds } from "../../../src/generate/derive.js";
import { healthCheckCommand, listenPort } from "../../../src/derive/index.js";
import { attr, blank, block, comment, obj, raw, renderHcl, template } from "../../../src/generate/hcl.js";
import { formatPackagesLabel, parsePackagesLabel } from "../../../src/generate/packages.js";
import { KilnError } from "../../../src/errors.js";
import { blueGreenSpec, hclFmtCheck, helloSpec, need, tempDir } from "../helpers.js";

const rolling = (instances: number, min: number, max: number) =>
  helloSpec([
    [["instances"], instances],
    [["strategy", "rolling", "minHealthyPercent"], min],
    [["strategy", "rolling", "maxHealthyPercent"], max],
  ]);

describe("AWS instance refresh", () => {
  test("hello: 100/150 of 3 stays 150 (AWS rounds 4.5 down to 4, kiln surges 1)", () => {
    const r = awsRefresh(helloSpec());
    assert.equal(r.minHealthyPercentage, 100);
    assert.equal(r.maxHealthyPercentage, 150);
    assert.equal(r.instanceWarmup, 1);
    assert.equal(r.autoRollback, true);
    assert.equal(r.skipMatching, true);
    assert.deepEqual(r.checkpointPercentages, [100]);
    assert.equal(r.bakeTime, 0);
    assert.deepEqual(r.notes, []);
  });

  test("one instance at 150 % is raised to 200 %, or AWS would not surge (the rounding trap)", () => {
    const r = awsRefresh(rolling(1, 100, 150));
    assert.equal(r.maxHealthyPercentage, 200);
    assert.match(r.notes[0]!, /rounds 1 × 150 % down to 1/);
  });

  test("blue-green: 100/200 with BakeTime = keepPreviousFor", () => {
    const r = awsRefresh(blueGreenSpec());
    assert.equal(r.minHealthyPercentage, 100);
    assert.equal(r.maxHealthyPercentage, 200);
    assert.equal(r.bakeTime, 600);
  });
});

test("Kubernetes surge/unavailable are counts, never both 0", () => {
  assert.deepEqual(kubernetesRolling(helloSpec()), { maxSurge: 1, maxUnavailable: 0 });
  assert.deepEqual(kubernetesRolling(rolling(4, 75, 100)), { maxSurge: 0, maxUnavailable: 1 });
  assert.deepEqual(kubernetesRolling(rolling(0, 100, 150)), { maxSurge: 1, maxUnavailable: 0 });
  assert.deepEqual(kubernetesRolling(blueGreenSpec()), { maxSurge: 3, maxUnavailable: 0 });
});

test("Swarm: start-first with surge, stop-first without", () => {
  assert.deepEqual(swarmUpdate(helloSpec()), { parallelism: 1, order: "start-first" });
  assert.deepEqual(swarmUpdate(rolling(6, 100, 150)), { parallelism: 3, order: "start-first" });
  assert.deepEqual(swarmUpdate(rolling(4, 75, 100)), { parallelism: 1, order: "stop-first" });
  assert.deepEqual(swarmUpdate(blueGreenSpec()), { parallelism: 3, order: "start-first" });
});

test("Nomad: canary = count for blue-green; progress_deadline above healthy_deadline", () => {
  const r = nomadUpdate(helloSpec());
  assert.equal(r.maxParallel, 1);
  assert.equal(r.canary, 0);
  assert.equal(r.minHealthyTime, 1000);
  assert.equal(r.progressDeadline, 120_000);
  assert.ok(r.progressDeadline > r.healthyDeadline);
  assert.equal(r.autoRevert, true);
  const bg = nomadUpdate(blueGreenSpec());
  assert.equal(bg.canary, 3);
  assert.equal(bg.autoPromote, true);
  const short = nomadUpdate(helloSpec([[["strategy", "rolling", "deadline"], "5s"]]));
  assert.ok(short.progressDeadline > short.healthyDeadline);
});

test("ALB health check: kiln's values, moved into AWS's ranges with a note", () => {
  const hello = albHealthCheck(helloSpec());
  assert.equal(hello.path, "/healthz");
  assert.equal(hello.intervalSeconds, 5);
  assert.equal(hello.timeoutSeconds, 2);
  assert.equal(hello.healthyThreshold, 2);
  assert.equal(hello.unhealthyThreshold, 3);
  assert.equal(hello.notes.length, 1);
  const exact = albHealthCheck(helloSpec([[["health"], { path: "/up", interval: "10s", timeout: "3s", healthyThreshold: 3, unhealthyThreshold: 4 }]]));
  assert.deepEqual({ ...exact, notes: exact.notes.length }, { path: "/up", intervalSeconds: 10, timeoutSeconds: 3, healthyThreshold: 3, unhealthyThreshold: 4, notes: 0 });
});

test("small helpers", () => {
  assert.equal(goDuration(0), "0s");
  assert.equal(goDuration(500), "500ms");
  assert.equal(goDuration(90_000), "1m30s");
  assert.equal(goDuration(1500), "1s500ms");
  assert.equal(goDuration(3_600_000), "1h");
  assert.equal(listenPort(helloSpec()), 8080);
  assert.deepEqual(userIds(helloSpec([[["image", "user"], "1234"]])), { uid: 1234, gid: 1234 });
  assert.equal(healthCheckCommand(helloSpec())[1], "/usr/local/bin/node");
});

describe("packages label", () => {
  test("round-trips, sorted by name", () => {
    const list = parsePackagesLabel("curl=7.88.1-10+deb12u8  ca-certificates=20230311");
    assert.deepEqual(list.map((p) => p.name), ["ca-certificates", "curl"]);
    assert.equal(formatPackagesLabel(list), "ca-certificates=20230311 curl=7.88.1-10+deb12u8");
    assert.deepEqual(parsePackagesLabel(undefined), []);
  });
  test("refuses unpinned or shell-unsafe entries", () => {
    for (const bad of ["curl", "curl=", "curl=1;rm -rf /", "Curl=1"]) {
      assert.throws(() => parsePackagesLabel(bad), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_SPEC", bad);
    }
  });
});

describe("HCL writer", () => {
  const sample = renderHcl([
    comment("a header"),
    blank,
    block("thing", ["a", "b"], [
      attr("short", 1),
      attr("much_longer_name", "x"),
      attr("list", ["a", raw("var.b")]),
      comment("breaks the run"),
      attr("escaped", 'quote " dollar ${x} percent %{y} back \\ nl\n'),
      attr("tpl", template("${var.name}-\"${local.t}\"")),
      attr("long_list", Array.from({ length: 12 }, (_, i) => `item-number-${i}`)),
      attr("after", true),
      attr("o", obj([["plain", 1], ["needs:quotes", "v"]])),
      blank,
      block("inner", [], []),
    ]),
  ]);

  test("escapes literal text and keeps template interpolations", () => {
    assert.match(sample, /escaped = "quote \\" dollar \$\$\{x\} percent %%\{y\} back \\\\ nl\\n"/);
    assert.match(sample, /tpl\s+= "\$\{var\.name\}-\\"\$\{local\.t\}\\""/);
    assert.match(sample, /short            = 1\n  much_longer_name = "x"\n  list             = \["a", var\.b\]\n/);
  });

  test("is in the canonical layout `packer fmt` writes", (t) => {
    if (!need(t, "packer")) return;
    const r = hclFmtCheck(tempDir(t), "sample", sample);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
