import assert from "node:assert/strict";
import { test } from "node:test";
import { rewriteLogsFollow } from "../../src/cli/args.js";

test("rewriteLogsFollow: the doc comment's worked examples", () => {
  const rows: Array<[string[], string, string[]]> = [
    [["logs", "-f"], "logs", ["logs", "--follow"]],
    [["logs", "-n", "5", "-f", "web-1"], "logs", ["logs", "-n", "5", "--follow", "web-1"]],
    [["-f", "x.yaml", "logs", "-f"], "logs", ["-f", "x.yaml", "logs", "--follow"]],
    [["deploy", "-f", "x.yaml"], "deploy", ["deploy", "-f", "x.yaml"]],
    [["logs", "--file", "x.yaml"], "logs", ["logs", "--file", "x.yaml"]],
  ];
  for (const [args, verb, want] of rows) assert.deepEqual(rewriteLogsFollow(args, verb), want, args.join(" "));
});
