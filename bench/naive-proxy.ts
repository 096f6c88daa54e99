// The yardstick: a ~25-line keep-alive Node reverse proxy, round robin over its
// backends, no retries, health or counters.
//   node dist/bench/naive-proxy.js LISTEN_PORT BACKEND_PORT...
import http from "node:http";

const [listen, ...ports] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let next = 0;
process.on("SIGTERM", () => process.exit(0)); // lets --cpu-prof write its profile

http
  .createServer((req, res) => {
    const port = ports[next++ % ports.length];
    const up = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  })
  .listen(listen, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
