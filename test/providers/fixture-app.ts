// The one fixture program every real provider runs in the conformance suite: plain ESM for
// the image's /usr/local/bin/node, with no dependencies. FIXTURE (an environment variable)
// picks how it behaves, so one image serves every case:
//
//   serve           HTTP on HOST (default 127.0.0.1) : PORT. GET / → what the instance can
//                   see and do (uid, env, which paths it can write); GET /incr → a counter in
//                   DATA_DIR that outlives the instance. Exits 0 on SIGTERM.
//   crash           exits with code 3 after 100 ms, without ever serving.
//   ignore-sigterm  serves like `serve` but ignores SIGTERM: only SIGKILL stops it.

export type FixtureName = "serve" | "crash" | "ignore-sigterm";

/** Exit code of the `crash` fixture. */
export const CRASH_EXIT_CODE = 3;

export const FIXTURE_APP = `
import http from "node:http";
import fs from "node:fs";
const mode = process.env.FIXTURE ?? "serve";
if (mode === "crash") {
  console.log("crashing on purpose");
  setTimeout(() => process.exit(${CRASH_EXIT_CODE}), 100);
} else {
  const dataDir = process.env.DATA_DIR ?? "/data";
  const tryWrite = (p) => { try { fs.writeFileSync(p, "x"); fs.rmSync(p); return "ok"; } catch (e) { return e.code; } };
  const server = http.createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/incr") {
      const f = dataDir + "/n";
      let n = 0;
      try { n = Number(fs.readFileSync(f, "utf8")); } catch {}
      n += 1;
      fs.writeFileSync(f + ".tmp", String(n));
      fs.renameSync(f + ".tmp", f);
      res.end(JSON.stringify({ n }));
      return;
    }
    let status = "";
    try { status = fs.readFileSync("/proc/self/status", "utf8"); } catch {}
    const field = (k) => { const line = status.split("\\n").find((l) => l.startsWith(k + ":")); return line ? line.slice(k.length + 1).trim() : null; };
    res.end(JSON.stringify({
      uid: process.getuid(), gid: process.getgid(), env: process.env,
      capEff: field("CapEff"), noNewPrivs: field("NoNewPrivs"),
      writeRoot: tryWrite("/kiln-probe"), writeApp: tryWrite(new URL(import.meta.url).pathname + ".probe"),
      writeTmp: tryWrite("/tmp/kiln-probe"), writeData: tryWrite(dataDir + "/kiln-probe"),
    }));
  });
  server.keepAliveTimeout = 500;
  if (mode === "ignore-sigterm") process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
  else process.on("SIGTERM", () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
  server.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1", () => console.log(mode + " listening on " + process.env.PORT));
}
`;

/** What GET / of a serving fixture answers. */
export interface FixtureReport {
  uid: number;
  gid: number;
  env: Record<string, string>;
  writeRoot: string;
  writeApp: string;
  writeTmp: string;
  writeData: string;
  /** from /proc/self/status; null where there is no /proc */
  capEff: string | null;
  noNewPrivs: string | null;
}
