// Who holds a port (named in kiln up's "already in use" error) and how the proxy's start error
// becomes the user's. Table rows are the worked examples of the doc comments; the /proc lookup
// is checked against a listener of this very process (no child process).

import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { test } from "node:test";
import { listeningInodes, findPortHolder } from "../../src/ops/port-holder.js";
import { proxyErrorToKiln, proxyStartError } from "../../src/ops/daemons.js";

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const LISTENING = "   0: 0100007F:3039 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4500299 1 000000009d606cad 100 0 0 10 0";
const ESTABLISHED = "   1: 0100007F:3039 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4500300 1 000000009d606cad 100 0 0 10 0";
const TCP6 = "   0: 00000000000000000000000000000000:3039 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 00000000e3b8a02f 100 0 0 10 0";

test("listeningInodes: only listeners on the port", () => {
  const rows: { table: string; port: number; want: string[] }[] = [
    { table: `${HEADER}\n${LISTENING}\n`, port: 12345, want: ["4500299"] },
    { table: `${HEADER}\n${LISTENING}\n`, port: 8080, want: [] },
    { table: `${HEADER}\n${ESTABLISHED}\n`, port: 12345, want: [] },
    { table: `${HEADER}\n${TCP6}\n`, port: 12345, want: ["77"] },
    { table: HEADER, port: 12345, want: [] },
    { table: "", port: 12345, want: [] },
  ];
  for (const r of rows) assert.deepEqual(listeningInodes(r.table, r.port), r.want, `${r.port} ${r.table.slice(-40)}`);
});

test("findPortHolder finds this process listening on a loopback port, and nothing on a closed one", async (t) => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    if (process.platform !== "linux") return t.skip("/proc/net/tcp is Linux's");
    const h = findPortHolder(port);
    assert.equal(h?.pid, process.pid);
    assert.ok(h!.command.startsWith(process.execPath) || h!.command.startsWith("node"), h!.command);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  assert.equal(findPortHolder(port), undefined);
});

const busy = { code: "KILN_E_USAGE" as const, message: "proxy cannot listen on 127.0.0.1:8080: address already in use", hint: "another process…", details: [{ where: "127.0.0.1:8080", path: "listen", message: "EADDRINUSE" }] };

test("proxyStartError reads the proxy's ready:false line among its log lines, and nothing else", () => {
  const line = JSON.stringify({ ready: false, error: busy });
  assert.deepEqual(proxyStartError(`kiln proxy: something\n${line}\nkiln proxy: KILN_E_USAGE: …\n`), busy);
  assert.equal(proxyStartError('{"ready":true,"pid":1}\n{"msg":"table changed"}\nnot json {\n'), undefined);
  assert.equal(proxyStartError('{"ready":false,"error":{"code":"rm -rf","message":"x"}}\n'), undefined);
});

test("proxyErrorToKiln: a port in use names the port, its holder and the key; other errors stay the proxy's", () => {
  const rows: { holder?: { pid: number; command: string }; error: typeof busy | { code: "KILN_E_USAGE"; message: string; hint: string; details: [] }; message: string; hint: string }[] = [
    {
      holder: { pid: 42, command: "python3 -m http.server 8080" },
      error: busy,
      message: "port 8080 (127.0.0.1:8080) is already in use by pid 42 (python3 -m http.server 8080): the proxy cannot listen there",
      hint: "stop pid 42, or set `listen` in /w/kiln.yaml to a free host:port",
    },
    { error: busy, message: "port 8080 (127.0.0.1:8080) is already in use by another process: the proxy cannot listen there", hint: "stop what listens there, or set `listen` in /w/kiln.yaml to a free host:port" },
    { error: { code: "KILN_E_USAGE", message: "proxy cannot listen on 127.0.0.1:80: permission denied", hint: "ports below 1024 need privileges", details: [] }, message: "proxy cannot listen on 127.0.0.1:80: permission denied", hint: "ports below 1024 need privileges" },
  ];
  for (const r of rows) {
    const e = proxyErrorToKiln(r.error, "/w/kiln.yaml", () => r.holder);
    assert.deepEqual({ code: e.code, message: e.message, hint: e.hint, exit: e.exitCode }, { code: "KILN_E_USAGE", message: r.message, hint: r.hint, exit: 2 });
  }
  assert.match(proxyErrorToKiln(busy, "/w/kiln.yaml", () => undefined, "HAProxy").message, /: HAProxy cannot listen there$/);
});
