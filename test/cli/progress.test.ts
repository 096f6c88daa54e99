import assert from "node:assert/strict";
import { test } from "node:test";
import {
  blobEvents,
  formatBytes,
  formatDuration,
  formatRate,
  imageEvents,
  liveLine,
  plainEndLine,
  plainFailLine,
  plainStartLine,
  progressFor,
  progressMode,
  withProgress,
} from "../../src/cli/progress.js";
import { tarSizeEstimate } from "../../src/image/layer.js";

/** A stream that keeps what is written; a terminal when `isTTY`. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { isTTY, columns: 120, chunks, write: (s: string) => (chunks.push(String(s)), true), text: () => chunks.join("") };
}

/** A clock the test moves. */
function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const ESC = "\x1b";

test("progressMode: the doc comment's worked examples", () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  const rows: Array<[string, { isTTY?: boolean }, NodeJS.ProcessEnv, { json?: boolean; quiet?: boolean }, string]> = [
    ["terminal", tty, {}, {}, "live"],
    ["NO_COLOR=1", tty, { NO_COLOR: "1" }, {}, "plain"],
    ["TERM=dumb", tty, { TERM: "dumb" }, {}, "plain"],
    ["pipe", pipe, {}, {}, "plain"],
    ["pipe, FORCE_COLOR=1", pipe, { FORCE_COLOR: "1" }, {}, "plain"],
    ["--json on a terminal", tty, {}, { json: true }, "off"],
    ["--quiet on a pipe", pipe, {}, { quiet: true }, "off"],
  ];
  for (const [what, stream, env, opts, mode] of rows) assert.equal(progressMode(stream, env, opts), mode, what);
});

test("formatBytes / formatDuration / formatRate: the doc comments' worked examples", () => {
  const bytes: Array<[number, string]> = [
    [0, "0 B"],
    [999, "999 B"],
    [12_300, "12.3 kB"],
    [98_200_000, "98.2 MB"],
    [1_234_000_000, "1.23 GB"],
  ];
  for (const [n, s] of bytes) assert.equal(formatBytes(n), s, String(n));
  const durations: Array<[number, string]> = [
    [42, "42 ms"],
    [999, "999 ms"],
    [16_400, "16.4 s"],
    [59_960, "60.0 s"],
    [125_000, "2m05s"],
  ];
  for (const [ms, s] of durations) assert.equal(formatDuration(ms), s, String(ms));
  assert.equal(formatRate(98_200_000, 16_400), "6.0 MB/s");
  assert.equal(formatRate(12_300, 50), undefined);
  assert.equal(formatRate(0, 5_000), undefined);
});

test("plain lines: the doc comments' worked examples", () => {
  assert.equal(plainStartLine("layer base", "building 412 entries"), "  layer base: building 412 entries");
  assert.equal(plainStartLine("sbom", undefined), "  sbom: started");
  assert.equal(plainEndLine("layer base", 16_400, { bytes: 98_200_000, detail: "gzip 38.1 MB" }), "  layer base: done in 16.4 s, 98.2 MB (6.0 MB/s), gzip 38.1 MB");
  assert.equal(plainEndLine("sbom", 42, { detail: "8 components" }), "  sbom: done in 42 ms, 8 components");
  assert.equal(plainEndLine("image", 15, {}), "  image: done in 15 ms");
  assert.equal(plainFailLine("push sha256:0123456789ab", 2_100), "  push sha256:0123456789ab: failed after 2.1 s");
});

test("liveLine: the doc comment's worked examples", () => {
  assert.equal(liveLine({ label: "layer base", done: 49_100_000, total: 98_200_000, elapsedMs: 8_000 }), "  ⠼ layer base [██████████░░░░░░░░░░]  50% 49.1 MB/98.2 MB 6.1 MB/s 8.0 s");
  assert.equal(liveLine({ label: "sbom", done: 0, elapsedMs: 1_250 }), "  ⠋ sbom 1.3 s");
  assert.equal(liveLine({ label: "pull sha256:0123", done: 3_000_000, elapsedMs: 2_000 }), "  ⠦ pull sha256:0123 3.0 MB 1.5 MB/s 2.0 s");
  // An estimated total that the real stream passes does not overflow the bar.
  assert.match(liveLine({ label: "x", done: 120, total: 100, elapsedMs: 10 }), /\[█{20}\] 100% 100 B\/100 B/);
});

/** A bake-like sequence of image events, with the clock moving between them. */
function bakeLikeRun(stream: ReturnType<typeof fakeStream>, env: NodeJS.ProcessEnv, clock = manualClock()) {
  const p = progressFor({}, { stream, env, now: clock.now });
  const on = imageEvents(p);
  on({ phase: "created", detail: "2026-12-01T00:00:00Z (from git)" });
  on({ phase: "base", step: "start", detail: "node@24" });
  on({ phase: "layer base", step: "start", detail: "building (30 entries)", total: 100_000_000 });
  clock.advance(5_000);
  on({ phase: "layer base", step: "update", bytes: 50_000_000, total: 100_000_000 });
  clock.advance(5_000);
  on({ phase: "layer base", step: "end", bytes: 100_000_000, stored: 40_000_000, detail: "built sha256:cebcd4aa318b" });
  on({ phase: "base", step: "end", detail: "kiln/node:24.22.3" });
  on({ phase: "collect", detail: "app" });
  on({ phase: "warning", detail: "node 24 ends soon" });
  on({ phase: "layer", detail: "app: cached sha256:c55b" });
  on({ phase: "sbom", step: "start", detail: "CycloneDX" });
  clock.advance(42);
  on({ phase: "sbom", step: "end", detail: "8 components" });
  p.close();
  return p;
}

const PLAIN_BAKE = [
  "  created 2026-12-01T00:00:00Z (from git)",
  "  base: node@24",
  "  layer base: building (30 entries)",
  "  layer base: done in 10.0 s, 100.0 MB (10.0 MB/s), gzip 40.0 MB, built sha256:cebcd4aa318b",
  "  base: done in 10.0 s, kiln/node:24.22.3",
  "  layer app: cached sha256:c55b",
  "  sbom: CycloneDX",
  "  sbom: done in 42 ms, 8 components",
  "",
].join("\n");

test("not a terminal, NO_COLOR, TERM=dumb: exactly one line per phase start and end, no \\r or escape code", () => {
  const cases: Array<[string, boolean, NodeJS.ProcessEnv]> = [
    ["pipe", false, {}],
    ["pipe with FORCE_COLOR", false, { FORCE_COLOR: "1" }],
    ["terminal with NO_COLOR", true, { NO_COLOR: "1" }],
    ["terminal with TERM=dumb", true, { TERM: "dumb" }],
  ];
  for (const [what, isTTY, env] of cases) {
    const s = fakeStream(isTTY);
    const p = bakeLikeRun(s, env);
    assert.equal(p.mode, "plain", what);
    assert.equal(s.text(), PLAIN_BAKE, what);
    assert.ok(!s.text().includes("\r") && !s.text().includes(ESC), what);
  }
});

test("--json, --quiet and KILN_PROGRESS=off: nothing at all", () => {
  for (const [opts, env] of [
    [{ json: true }, {}],
    [{ quiet: true }, {}],
    [{}, { KILN_PROGRESS: "off" }],
  ] as Array<[{ json?: boolean; quiet?: boolean }, NodeJS.ProcessEnv]>) {
    const s = fakeStream(true);
    const p = progressFor(opts, { stream: s, env });
    assert.equal(p.mode, "off");
    imageEvents(p)({ phase: "sbom", step: "start" });
    p.note("x");
    p.close();
    assert.equal(s.text(), "");
  }
});

test("a phase open when the work throws ends with one 'failed after' line", async () => {
  const s = fakeStream(false);
  const clock = manualClock();
  const p = progressFor({}, { stream: s, env: {}, now: clock.now });
  await assert.rejects(
    withProgress(p, async (pr) => {
      blobEvents(pr, "push")({ digest: "sha256:0123456789abcdef", size: 2_000_000, done: 0, state: "start" });
      clock.advance(2_100);
      throw new Error("registry went away");
    }),
    /registry went away/,
  );
  assert.equal(s.text(), "  sha256:0123456789ab: uploading 2.0 MB\n  sha256:0123456789ab: failed after 2.1 s\n");
});

test("blobEvents: a line per blob start and end, skipped blobs one line, progress none (plain)", () => {
  const s = fakeStream(false);
  const clock = manualClock();
  const on = blobEvents(progressFor({}, { stream: s, env: {}, now: clock.now }), "pull");
  on({ digest: "sha256:aaaaaaaaaaaaaaaa", size: 512, done: 512, state: "skipped" });
  on({ digest: "sha256:bbbbbbbbbbbbbbbb", size: 4_000_000, done: 0, state: "start" });
  clock.advance(1_000);
  on({ digest: "sha256:bbbbbbbbbbbbbbbb", size: 4_000_000, done: 2_000_000, state: "progress" });
  clock.advance(1_000);
  on({ digest: "sha256:bbbbbbbbbbbbbbbb", size: 4_000_000, done: 4_000_000, state: "done" });
  assert.equal(
    s.text(),
    ["  sha256:aaaaaaaaaaaa: 512 B already in the store", "  sha256:bbbbbbbbbbbb: downloading 4.0 MB", "  sha256:bbbbbbbbbbbb: done in 2.0 s, 4.0 MB (2.0 MB/s)", ""].join("\n"),
  );
});

test("on a terminal: a live bar while a phase runs, a ✔ line when it ends, the cursor given back", () => {
  const s = fakeStream(true);
  const clock = manualClock();
  const listeners = process.listenerCount("SIGINT");
  const p = progressFor({}, { stream: s, env: {}, now: clock.now, style: { colour: false, fancy: true } });
  assert.equal(p.mode, "live");
  const on = imageEvents(p);
  on({ phase: "layer base", step: "start", detail: "building", total: 100_000_000 });
  clock.advance(4_000);
  on({ phase: "layer base", step: "update", bytes: 40_000_000, total: 100_000_000 });
  clock.advance(1_000);
  // The end redraws once (the ✔ line above the bar), then takes the bar away; cli-progress's
  // own timer may draw more in between, never less.
  on({ phase: "layer base", step: "end", bytes: 100_000_000, stored: 40_000_000 });
  p.close();
  const text = s.text();
  assert.match(text, /layer base \[████████░{12}\]  40% 40\.0 MB\/100\.0 MB 8\.0 MB\/s 5\.0 s/);
  assert.match(text, /✔ layer base: done in 5\.0 s, 100\.0 MB \(20\.0 MB\/s\), gzip 40\.0 MB\n/);
  assert.ok(text.includes(`${ESC}[?25l`) && text.includes(`${ESC}[?25h`), "hides the cursor while drawing and shows it again");
  assert.ok(text.lastIndexOf(`${ESC}[?25h`) > text.lastIndexOf("████"), "the cursor comes back after the last bar");
  assert.equal(process.listenerCount("SIGINT"), listeners, "the Ctrl-C handler (cursor back, then the signal's own action) goes with the bars");
});

test("tarSizeEstimate: the doc comment's worked example", () => {
  const file = { size: 700, sha256: "0".repeat(64), data: new Uint8Array(700) };
  assert.equal(tarSizeEstimate([{ path: "app", kind: "dir", mode: 0o755 }, { path: "app/server.js", kind: "file", mode: 0o644, file }]), 3072);
});
