// `node dist/src/loadgen/main.js --url http://127.0.0.1:8080/ [--concurrency 8]
//   [--duration-ms 60000] [--max-requests 1000000] [--method GET|POST]
//   [--report-every-ms 200] [--timeout-ms 10000] [--body TEXT] [--stop-on-stdin-close]`
//
// A bounded HTTP load generator, run as its own process so that its event loop
// never competes with the thing under test. Only loopback URLs are accepted.
// stdout is JSON lines:
//   {"t":…,"requests":…,"failed":…,"byStatus":{…},"byVersion":{…},"maxCounter":…,"counterWentBackwards":false,"latencyMs":{…}}
//     every --report-every-ms;
//   {"snapshot":ID,…totals} in answer to a {"cmd":"snapshot","id":ID} line on stdin;
//   {"done":true,…totals,"reason":…,"errors":[first 20]} last, when the duration or
//     request bound is reached, on SIGTERM/SIGINT, or on a {"cmd":"stop"} line on stdin.
// Bad options: {"error":…} on stdout, the message on stderr, exit code 2.

import { createInterface } from "node:readline";
import { parseArgs } from "./options.js";
import { runLoad } from "./run.js";

function line(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + "\n");
}

const parsed = parseArgs(process.argv.slice(2));
if (!parsed.ok) {
  line({ error: parsed.error });
  process.stderr.write(`loadgen: ${parsed.error}\n`);
  process.exit(2);
}
const options = parsed.options;

const run = runLoad(options, (t) => line(t));

process.on("SIGTERM", () => run.stop("signal"));
process.on("SIGINT", () => run.stop("signal"));

const stdin = createInterface({ input: process.stdin });
stdin.on("line", (text) => {
  let cmd: { cmd?: unknown; id?: unknown };
  try {
    cmd = JSON.parse(text) as { cmd?: unknown; id?: unknown };
  } catch {
    return; // not a command
  }
  if (cmd.cmd === "stop") run.stop("stdin");
  else if (cmd.cmd === "snapshot") line({ snapshot: cmd.id ?? null, ...run.totals() });
});
stdin.on("close", () => {
  if (options.stopOnStdinClose) run.stop("stdin-closed");
});

void run.finished.then((final) => {
  process.stdout.write(JSON.stringify(final) + "\n", () => process.exit(0));
});
