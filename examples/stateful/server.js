// A deliberately stateful service: the "before" picture of an app adopting kiln.
// `kiln audit` must fail it. Every habit here is one the audit reports:
//
//   - sessions live in /var/lib/stateful/sessions.json, on the instance's own disk:
//     a replacement instance starts without them (users are logged out), and two
//     instances each have their own;
//   - every request is appended to /app/access.log, inside the app's directory;
//   - it runs as root (see bake-as-root.mjs: kiln.yaml itself refuses root);
//   - the image carries a (fake) SSH deploy key and a .env with a session secret.
//
//   GET  /healthz   200 "ok"
//   GET  /          {"sessions": N}
//   POST /login     creates a session, answers {"session": id}
//   GET  /whoami?session=ID   200 when the session exists (also after a restart), else 401

import { createServer } from "node:http";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

const STATE_DIR = "/var/lib/stateful";
const SESSIONS = `${STATE_DIR}/sessions.json`;
const ACCESS_LOG = "/app/access.log";
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "127.0.0.1";

let sessions = {};
try {
  sessions = JSON.parse(readFileSync(SESSIONS, "utf8")); // state from a previous run
} catch {
  sessions = {};
}

function save() {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(SESSIONS, JSON.stringify(sessions));
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  try {
    appendFileSync(ACCESS_LOG, `${new Date().toISOString()} ${req.method} ${url.pathname}\n`);
  } catch (e) {
    console.error(`cannot write ${ACCESS_LOG}: ${e.message}`);
  }
  if (url.pathname === "/healthz") return send(res, 200, "ok");
  if (url.pathname === "/" && req.method === "GET") return send(res, 200, { sessions: Object.keys(sessions).length });
  if (url.pathname === "/login" && req.method === "POST") {
    const id = randomBytes(8).toString("hex");
    sessions[id] = { at: Date.now() };
    save();
    return send(res, 200, { session: id });
  }
  if (url.pathname === "/whoami") {
    const id = url.searchParams.get("session") ?? "";
    return sessions[id] ? send(res, 200, { session: id }) : send(res, 401, { error: "no such session" });
  }
  send(res, 404, { error: "not found" });
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
server.listen(port, host, () => console.log(`stateful listening on ${host}:${port}`));
