// A thread of spawner.ts's pool: each message is one spawn; it answers with the pid once the child
// has exec'd and its record is written, and once more when the child exits.

import { parentPort } from "node:worker_threads";
import { spawnHere, SpawnFailure, type FromWorker, type ToWorker } from "./spawner.js";

const port = parentPort;
if (port === null) throw new Error("spawn-worker.js runs only as a worker thread");
const send = (m: FromWorker) => port.postMessage(m);
port.on("message", ({ id, req }: ToWorker) => {
  spawnHere(req, (exit) => send({ id, kind: "exit", exit })).then(
    ({ pid, startTime }) => send({ id, kind: "spawned", pid, startTime }),
    (e: unknown) =>
      send({
        id,
        kind: "failed",
        message: (e as Error).message,
        ...((e as SpawnFailure).code ? { code: (e as SpawnFailure).code! } : {}),
        stage: e instanceof SpawnFailure ? e.stage : "spawn",
      }),
  );
});
