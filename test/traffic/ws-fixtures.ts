// WebSocket fixtures shared by the proxy's and HAProxy's WebSocket tests: a backend that
// greets, echoes and pushes, and a client that sends on a timer and records what comes back.
// They only listen on and connect to 127.0.0.1; they spawn nothing.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";

export interface WsBackend {
  name: string;
  address: string;
  /** sockets open on this backend right now */
  open(): number;
  close(): Promise<void>;
}

/**
 * A WebSocket backend: greets with "hello NAME", echoes "NAME:msg", pushes
 * "tick N" every 10 ms; /nope is refused with 403; /healthz answers 200.
 */
export async function wsBackend(name: string): Promise<WsBackend> {
  const server = http.createServer((_req, res) => res.writeHead(200, { "x-backend": name }).end(name));
  const wss = new WebSocketServer({ noServer: true });
  const timers = new Set<NodeJS.Timeout>();
  server.on("upgrade", (req, socket, head) => {
    if (req.url === "/nope") {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(`hello ${name} ${req.headers["x-forwarded-for"]}`);
      ws.on("message", (m) => ws.send(`${name}:${m.toString()}`));
      let n = 0;
      const t = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(`tick ${n++}`), 10);
      timers.add(t);
      ws.on("close", () => {
        clearInterval(t);
        timers.delete(t);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    name,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => wss.clients.size,
    close: async () => {
      for (const t of timers) clearInterval(t);
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A client that sends "m<i>" every 20 ms and records what comes back. */
export interface Chatter {
  ws: WebSocket;
  backend: string;
  sent: Array<{ i: number; at: number }>;
  echoed: Set<number>;
  ticks: number[];
  closed?: { code: number; at: number };
  stop(): void;
}

export function connect(address: string, path = "/chat"): Promise<Chatter> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${address}${path}`, { headers: { "x-forwarded-for": "6.6.6.6" } });
    const c: Chatter = { ws, backend: "", sent: [], echoed: new Set(), ticks: [], stop: () => undefined };
    let timer: NodeJS.Timeout | undefined;
    let i = 0;
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith("hello ")) {
        c.backend = text.split(" ")[1]!;
        assert.equal(text.split(" ")[2], "127.0.0.1", "the instance sees the real client address");
        timer = setInterval(() => {
          if (ws.readyState !== WebSocket.OPEN || i >= 2000) return;
          c.sent.push({ i, at: Date.now() });
          ws.send(`m${i++}`);
        }, 20);
        c.stop = () => clearInterval(timer);
        resolve(c);
      } else if (text.startsWith("tick ")) c.ticks.push(Number(text.slice(5)));
      else c.echoed.add(Number(text.split(":m")[1]));
    });
    ws.on("close", (code) => {
      clearInterval(timer);
      c.closed = { code, at: Date.now() };
    });
    ws.on("error", reject);
  });
}

