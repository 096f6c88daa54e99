// A fake `aws` CLI for shift.sh's tests: the few commands the script runs,
// against a JSON world in $FAKE_AWS_STATE (stack outputs, target health,
// listener weights and tags, Auto Scaling group capacities). Not a test file:
// the tests put a wrapper named `aws` first on PATH that runs it.

import { readFileSync, writeFileSync } from "node:fs";

export interface FakeWorld {
  outputs: Record<string, string>;
  /** target group arn → states of its registered targets */
  targets: Record<string, string[]>;
  /** target group arn → weight */
  weights: Record<string, number>;
  tags: Record<string, string>;
  capacity: Record<string, number>;
  /** once traffic is switched to this target group, it reports one unhealthy target */
  failsAfterSwitch?: string;
  calls: string[];
}

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function main(args: string[]): number {
  const file = process.env.FAKE_AWS_STATE!;
  const w = JSON.parse(readFileSync(file, "utf8")) as FakeWorld;
  const save = () => writeFileSync(file, JSON.stringify(w));
  const [service, op] = args;
  w.calls.push(`${service} ${op}${op === "wait" ? ` ${args[2]}` : ""}`);
  const query = opt(args, "--query") ?? "";
  const out = (s: string | number) => process.stdout.write(`${s}\n`);
  let status = 0;
  const key = `${service} ${op}`;
  if (key === "cloudformation describe-stacks") {
    for (const [k, v] of Object.entries(w.outputs)) out(`${k}\t${v}`);
  } else if (key === "elbv2 describe-target-health") {
    const tg = opt(args, "--target-group-arn")!;
    const states = [...(w.targets[tg] ?? [])];
    if (w.failsAfterSwitch === tg && (w.weights[tg] ?? 0) > 0 && states.length) states[0] = "unhealthy";
    const m = /State=='([a-z]+)'/.exec(query);
    out(m ? states.filter((s) => s === m[1]).length : states.length);
  } else if (key === "elbv2 wait") {
    const states = w.targets[opt(args, "--target-group-arn")!] ?? [];
    status = states.length > 0 && states.every((s) => s === "healthy") ? 0 : 255;
  } else if (key === "elbv2 describe-listeners") {
    out(Object.keys(w.weights).find((tg) => w.weights[tg]! > 0) ?? "None");
  } else if (key === "elbv2 modify-listener") {
    const actions = JSON.parse(opt(args, "--default-actions")!) as { ForwardConfig: { TargetGroups: { TargetGroupArn: string; Weight: number }[] } }[];
    for (const g of actions[0]!.ForwardConfig.TargetGroups) w.weights[g.TargetGroupArn] = g.Weight;
  } else if (key === "elbv2 add-tags") {
    const m = /^Key=([^,]+),Value=(.*)$/.exec(opt(args, "--tags")!)!;
    w.tags[m[1]!] = m[2]!;
  } else if (key === "elbv2 describe-tags") {
    out(w.tags[/Key=='([^']+)'/.exec(query)![1]!] ?? "None");
  } else if (key === "autoscaling update-auto-scaling-group") {
    const asg = opt(args, "--auto-scaling-group-name")!;
    w.capacity[asg] = Number(opt(args, "--desired-capacity"));
    // a fleet scaled to 0 leaves its target group
    const color = Object.keys(w.outputs).find((k) => k.endsWith("AutoScalingGroupName") && w.outputs[k] === asg)?.replace("AutoScalingGroupName", "");
    if (w.capacity[asg] === 0 && color) w.targets[w.outputs[`${color}TargetGroupArn`]!] = [];
  } else {
    process.stderr.write(`fake aws: unsupported ${args.join(" ")}\n`);
    status = 2;
  }
  save();
  return status;
}

// Only as the `aws` command (a test runner that loads this file finds no world and does nothing).
if (process.env.FAKE_AWS_STATE && process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  process.exitCode = main(process.argv.slice(2));
}
