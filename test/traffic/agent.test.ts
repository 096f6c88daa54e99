// TargetAgent (src/traffic/proxy/agent.ts) against Node's own http.Agent: the same sockets
// reused or not, for the same instance answers.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { describe, it } from "node:test";
import { IDLE_SINCE, OWN_REUSE, TargetAgent, keepAliveHintS } from "../../src/traffic/proxy/agent.js";

describe("keepAliveHintS", () => {
  const rows: Array<[string[], number | undefined]> = [
    [["Keep-Alive", "timeout=5"], 5],
    [["keep-alive", "timeout=5, max=100"], 5],
    [["KEEP-ALIVE", "timeout=12"], 12],
    [["Keep-Alive", "max=100, timeout=5"], undefined],
    [["Content-Type", "text/plain"], undefined],
    [["Content-Type", "text/plain", "Keep-Alive", "timeout=2", "Keep-Alive", "timeout=9"], 2],
    [["Keep-Alive", "", "Keep-Alive", "timeout=3"], undefined],
    [[], undefined],
  ];
  for (const [raw, want] of rows) it(`${JSON.stringify(raw)} → ${want}`, () => assert.equal(keepAliveHintS(raw), want));
});

/** An instance answering every request with `headers`; the client's local ports it saw, in order. */
async function instance(headers: Record<string, string>): Promise<{ port: number; ports: number[]; close(): Promise<void> }> {
  const ports: number[] = [];
  const server = http.createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    res.writeHead(200, { "content-length": "2", ...headers });
    res.end("ok");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    ports,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

interface Seen {
  reused: boolean[];
  asyncIds: number[];
  free: number;
  busy: number;
}

/** `n` GET requests one after another through `agent`; what each found. */
async function sequence(agent: http.Agent, port: number, n: number): Promise<Seen> {
  const seen: Seen = { reused: [], asyncIds: [], free: 0, busy: 0 };
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: `/${i}`, agent, servername: "" } as http.RequestOptions, (res) => {
        res.resume();
        res.on("end", () => setImmediate(resolve)); // the socket goes back to the pool on the next tick
      });
      req.on("socket", (s: Socket) => {
        seen.reused.push(req.reusedSocket);
        seen.asyncIds.push((s as unknown as { _handle?: { getAsyncId(): number } })._handle?.getAsyncId() ?? -1);
      });
      req.on("error", reject);
      req.end();
    });
  }
  const count = (m: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(m).reduce((a, l) => a + (l?.length ?? 0), 0);
  seen.free = count(agent.freeSockets);
  seen.busy = count(agent.sockets);
  return seen;
}

describe("TargetAgent", () => {
  const options: http.AgentOptions = { keepAlive: true, maxSockets: 4, maxFreeSockets: 4, scheduling: "lifo" };
  const cases: Array<[string, Record<string, string>]> = [
    ["no Keep-Alive hint", {}],
    ["Keep-Alive: timeout=5", { "keep-alive": "timeout=5" }],
    ["Keep-Alive: timeout=1 (nothing left under Node's 1 s margin: not reused)", { "keep-alive": "timeout=1" }],
    ["Connection: close", { connection: "close" }],
  ];
  it("finds the socket's async id slot on this Node (so free sockets take its own path)", () => assert.equal(OWN_REUSE, true));
  for (const [name, headers] of cases) {
    it(`reuses sockets as Node's Agent does: ${name}`, async () => {
      const inst = await instance(headers);
      const node = new http.Agent(options);
      const ours = new TargetAgent(`127.0.0.1:${inst.port}:`, options);
      try {
        const a = await sequence(node, inst.port, 4);
        const portsNode = inst.ports.splice(0);
        const b = await sequence(ours, inst.port, 4);
        const portsOurs = inst.ports.splice(0);
        assert.deepEqual(b.reused, a.reused);
        assert.deepEqual([b.free, b.busy], [a.free, a.busy]);
        // Same pattern of connections: a request on a reused socket came from the previous one's port.
        const pattern = (ps: number[]) => ps.map((p, i) => (i > 0 && p === ps[i - 1] ? "same" : "new"));
        assert.deepEqual(pattern(portsOurs), pattern(portsNode));
        // A reused socket gets a new async id for each request, as with Node's Agent.
        assert.equal(new Set(b.asyncIds).size, b.asyncIds.length);
        // A socket in the free list carries the time it went idle (the pool's idle sweep reads it).
        for (const list of Object.values(ours.freeSockets)) for (const s of list ?? []) assert.equal(typeof (s as unknown as Record<symbol, unknown>)[IDLE_SINCE], "number");
      } finally {
        node.destroy();
        ours.destroy();
        await inst.close();
      }
    });
  }

  it("lists the busy socket and queues past maxSockets, as Node's Agent does", async () => {
    const run = async (make: (key: string) => http.Agent) => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const server = http.createServer(async (_req, res) => {
        await gate;
        res.end("ok");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as AddressInfo).port;
      const key = `127.0.0.1:${port}:`;
      const agent = make(key);
      try {
        const done = [0, 1].map(
          (i) =>
            new Promise<boolean>((resolve, reject) => {
              const req = http.request({ host: "127.0.0.1", port, path: `/${i}`, agent }, (res) => {
                res.resume();
                res.on("end", () => resolve(req.reusedSocket));
              });
              req.on("error", reject);
              req.end();
            }),
        );
        for (let i = 0; i < 100 && agent.requests[key]?.length !== 1; i++) await new Promise((r) => setTimeout(r, 10));
        const listed = [agent.sockets[key]?.length, agent.requests[key]?.length];
        release();
        // A queued request is handed the freed socket directly (Node does not mark it reused).
        return { listed, reused: await Promise.all(done) };
      } finally {
        agent.destroy();
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    };
    const options: http.AgentOptions = { keepAlive: true, maxSockets: 1, scheduling: "lifo" };
    const ours = await run((key) => new TargetAgent(key, options));
    assert.deepEqual(ours.listed, [1, 1]);
    assert.deepEqual(ours, await run(() => new http.Agent(options)));
  });
});
