// A/B of two builds of kiln's proxy (e.g. before and after a change), with the
// naive proxy as the yardstick, over the same backends in one run:
//   [OTHER_NODE_FLAGS="--max-semi-space-size=16"] node dist/bench/proxy-ab.js OTHER_MAIN_JS [rounds] [seconds]
// OTHER_MAIN_JS is another build's dist/src/traffic/proxy/main.js (or this one, to try node
// flags given in OTHER_NODE_FLAGS). Prints JSON; writes nothing.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "../src/net.js";
import { ProxyClient } from "../src/traffic/proxy/client.js";
import { benchProxy } from "./proxy.js";

const [other, rounds = "3", seconds = "4"] = process.argv.slice(2);
const r = await benchProxy({
  rounds: Number(rounds),
  durationS: Number(seconds),
  only: ["builtin", "naive"],
  out: "",
  gc: false, // "other" is started here without --trace-gc-nvp: all three alike
  extra: {
    other: async (backends) => {
      const dir = mkdtempSync(join(os.tmpdir(), "kiln-ab-"));
      const port = await freeLoopbackPort();
      const flags = (process.env.OTHER_NODE_FLAGS ?? "").split(" ").filter(Boolean);
      const child = spawn(process.execPath, [...flags, other!, "--listen", `127.0.0.1:${port}`, "--admin", join(dir, "p.sock"), "--state", join(dir, "r.json")], { stdio: "ignore" });
      const client = new ProxyClient(join(dir, "p.sock"));
      for (let i = 0; i < 200 && !(await client.ping()); i++) await new Promise((res) => setTimeout(res, 50));
      await client.setTable({
        version: 1,
        targets: backends.map((address, i) => ({ id: `b${i + 1}`, release: "r1", address, weight: 1, state: "active" as const })),
        health: { path: "/healthz", intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 },
        drainTimeoutMs: 1000,
      });
      return {
        url: `http://127.0.0.1:${port}/version`,
        pid: child.pid,
        stop: async () => {
          child.kill("SIGKILL");
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
});
const row = (k: string) => ({ rps: r.results[k]!.rps, cpuUsPerRequest: r.results[k]!.cpuUsPerRequest, samples: r.results[k]!.samples.map((x) => [x.rps, x.cpuUsPerRequest]) });
process.stdout.write(`${JSON.stringify({ builtin: row("builtin"), other: row("other"), naive: row("naive"), load: r.noise.loadAverageBefore })}\n`);
