// `kiln review` on a 10,000-line deploy script, as a user runs it: the whole CLI process, wall
// and CPU (user + sys), median of 5 runs, beside `node -e 0` measured the same way. Target: < 2 s.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { longDeployScript } from "../test/review/helpers.js";
import { KILN_BIN } from "../test/support/kiln-bin.js";

interface Run {
  wallMs: number;
  cpuMs: number;
}

/** One process under /usr/bin/time: wall from here, CPU from time's "%U %S". */
function timed(argv: string[]): Run {
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%U %S", ...argv], { encoding: "utf8", timeout: 120_000 });
  const wallMs = performance.now() - t0;
  const last = r.stderr.trim().split("\n").at(-1) ?? "";
  const [u, s] = last.split(" ").map(Number);
  if (r.status !== 0 || u === undefined || s === undefined || Number.isNaN(u + s)) throw new Error(`${argv.join(" ")} failed (${r.status}): ${r.stderr.slice(-500)}`);
  return { wallMs, cpuMs: (u + s) * 1000 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchReview(runs = 5) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-bench-review-"));
  try {
    const lines = longDeployScript(10_000);
    const file = join(dir, "deploy.sh");
    writeFileSync(file, `${lines.join("\n")}\n`);
    const review: Run[] = [];
    const node: Run[] = [];
    for (let i = 0; i < runs; i++) {
      review.push(timed([process.execPath, KILN_BIN, "review", file, "--json"]));
      node.push(timed([process.execPath, "-e", "0"]));
    }
    const wall = median(review.map((r) => r.wallMs));
    return {
      lines: lines.length,
      runs,
      reviewWallMs: Math.round(wall),
      reviewCpuMs: Math.round(median(review.map((r) => r.cpuMs))),
      nodeStartWallMs: Math.round(median(node.map((r) => r.wallMs))),
      targetMs: 2000,
      met: wall < 2000,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
