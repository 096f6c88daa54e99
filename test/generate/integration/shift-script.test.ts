// shift.sh (aws-blue-green) run for real against a fake `aws` CLI: the end state of
// the world (listener weights, fleet capacities) after promote, rollback and retire.

import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { generate } from "../../../src/generate/index.js";
import type { FakeWorld } from "../fake-aws.js";
import { blueGreenSpec, IMAGE, need, run, tempDir } from "../helpers.js";

const fakeAws = fileURLToPath(new URL("../fake-aws.js", import.meta.url));
const BLUE = "arn:tg/blue";
const GREEN = "arn:tg/green";

function world(green: string[], extra: Partial<FakeWorld> = {}): FakeWorld {
  return {
    outputs: {
      ListenerArn: "arn:listener",
      BlueTargetGroupArn: BLUE,
      GreenTargetGroupArn: GREEN,
      BlueAutoScalingGroupName: "asg-blue",
      GreenAutoScalingGroupName: "asg-green",
    },
    targets: { [BLUE]: ["healthy", "healthy", "healthy"], [GREEN]: green },
    weights: { [BLUE]: 100, [GREEN]: 0 },
    tags: {},
    capacity: { "asg-blue": 3, "asg-green": 3 },
    calls: [],
    ...extra,
  };
}

function setup(t: { after(fn: () => void): void }) {
  const dir = tempDir(t, "kiln-shift-");
  const shift = generate("aws-blue-green", blueGreenSpec(), IMAGE).find((f) => f.path === "shift.sh")!;
  writeFileSync(join(dir, "shift.sh"), shift.content);
  chmodSync(join(dir, "shift.sh"), 0o755);
  writeFileSync(join(dir, "aws"), `#!/bin/sh\nexec "${process.execPath}" "${fakeAws}" "$@"\n`);
  chmodSync(join(dir, "aws"), 0o755);
  const state = join(dir, "world.json");
  const shiftSh = (args: string[], env: Record<string, string> = {}) =>
    run(["bash", join(dir, "shift.sh"), ...args], { env: { PATH: `${dir}:${process.env.PATH}`, FAKE_AWS_STATE: state, CHECK_EVERY: "0", ...env } });
  const set = (w: FakeWorld) => writeFileSync(state, JSON.stringify(w));
  const get = () => JSON.parse(readFileSync(state, "utf8")) as FakeWorld;
  return { shiftSh, set, get };
}

test("promote waits for the whole new fleet: an incomplete one is never switched to", (t) => {
  if (!need(t, "bash")) return;
  const { shiftSh, set, get } = setup(t);
  set(world(["healthy"]));
  const r = shiftSh(["promote", "green"], { DEADLINE_SECONDS: "1" });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /green is not healthy: traffic stays on blue, nothing changed/);
  assert.deepEqual(get().weights, { [BLUE]: 100, [GREEN]: 0 });
  assert.ok(!get().calls.includes("elbv2 modify-listener"));
});

test("promote → traffic on green, blue kept; retire refuses inside the window; rollback is instant; retire after it", (t) => {
  if (!need(t, "bash")) return;
  const { shiftSh, set, get } = setup(t);
  set(world(["healthy", "healthy", "healthy"]));
  const p = shiftSh(["promote", "green"], { KEEP_PREVIOUS_SECONDS: "1" });
  assert.equal(p.status, 0, p.stdout + p.stderr);
  assert.deepEqual(get().weights, { [BLUE]: 0, [GREEN]: 100 });
  assert.equal(get().capacity["asg-blue"], 3, "blue is kept warm");
  assert.match(get().tags["kiln:switched-at"]!, /^\d+$/);

  const early = shiftSh(["retire"]);
  assert.equal(early.status, 1);
  assert.match(early.stderr, /blue is kept until \d+s from now/);
  assert.equal(get().capacity["asg-blue"], 3);

  const back = shiftSh(["rollback"]);
  assert.equal(back.status, 0, back.stderr);
  assert.deepEqual(get().weights, { [BLUE]: 100, [GREEN]: 0 });

  const again = shiftSh(["promote", "green"], { KEEP_PREVIOUS_SECONDS: "0" });
  assert.equal(again.status, 0, again.stderr);
  const retire = shiftSh(["retire"], { KEEP_PREVIOUS_SECONDS: "0" });
  assert.equal(retire.status, 0, retire.stderr);
  assert.equal(get().capacity["asg-blue"], 0);
  assert.equal(get().capacity["asg-green"], 3);
  assert.deepEqual(get().weights, { [BLUE]: 0, [GREEN]: 100 });

  const late = shiftSh(["rollback"]);
  assert.equal(late.status, 1, "no rollback onto a retired fleet");
  assert.deepEqual(get().weights, { [BLUE]: 0, [GREEN]: 100 });
});

test("autoRollback: green turning unhealthy inside the window switches back to blue", (t) => {
  if (!need(t, "bash")) return;
  const { shiftSh, set, get } = setup(t);
  set(world(["healthy", "healthy", "healthy"], { failsAfterSwitch: GREEN }));
  const r = shiftSh(["promote", "green"], { KEEP_PREVIOUS_SECONDS: "30", UNHEALTHY_THRESHOLD: "2" });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /green turned unhealthy: rolled back to blue/);
  assert.deepEqual(get().weights, { [BLUE]: 100, [GREEN]: 0 });
  assert.equal(get().capacity["asg-blue"], 3);
});
