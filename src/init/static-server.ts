// What `kiln init` gives a static site: a tiny dependency-free Node server,
// written next to kiln.yaml, so the site bakes on kiln's node base like any
// other app (one runtime to patch, the same health checks and rollouts).
// Chosen over an nginx/busybox base because kiln's built-in base is Node's.

export const STATIC_SERVER_FILE = "static-server.js";

/** The server's source; `root` is the site directory relative to the server file. */
export function staticServerSource(root: string): string {
  return `// Written by \`kiln init\`: serves the static site in ${JSON.stringify(root)} read-only, with GET /healthz for
// kiln's health checks. No dependencies; listens on $PORT (kiln sets it), 8080 otherwise.
"use strict";
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, ${JSON.stringify(root)});
const types = {
  ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
  ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp", ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8", ".woff2": "font/woff2", ".wasm": "application/wasm",
};

const server = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url || "/", "http://localhost");
  } catch {
    res.writeHead(400, { "content-type": "text/plain" });
    return res.end("bad request");
  }
  if (url.pathname === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("ok");
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    return res.end();
  }
  let name;
  try {
    name = decodeURIComponent(url.pathname);
  } catch {
    res.writeHead(400, { "content-type": "text/plain" });
    return res.end("bad request");
  }
  if (name.includes("\0")) {
    res.writeHead(400, { "content-type": "text/plain" });
    return res.end("bad request");
  }
  let file = path.join(root, name);
  if (file !== root && !file.startsWith(root + path.sep)) {
    res.writeHead(403);
    return res.end();
  }
  fs.stat(file, (err, st) => {
    if (!err && st.isDirectory()) file = path.join(file, "index.html");
    fs.stat(file, (err2, st2) => {
      if (err2 || !st2.isFile()) {
        res.writeHead(404, { "content-type": "text/plain" });
        return res.end("not found");
      }
      res.writeHead(200, { "content-type": types[path.extname(file).toLowerCase()] || "application/octet-stream", "content-length": st2.size });
      if (req.method === "HEAD") return res.end();
      fs.createReadStream(file).pipe(res);
    });
  });
});

server.listen(Number(process.env.PORT || 8080), process.env.HOST || "0.0.0.0");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
}
