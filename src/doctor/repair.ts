// Carry out the repairs diagnose() proposed. Each one re-checks, just before acting, the
// fact it was based on (a controller may have started meanwhile), touches one thing,
// and says what it did. Release records are never deleted; healthy instances never touched.

import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homePaths } from "../home.js";
import { openStore } from "../image/index.js";
import type { Provider } from "../providers/provider.js";
import { createProvider } from "../providers/registry.js";
import { StateDb } from "../state/db.js";
import { loadTableFile, saveTableFile } from "../traffic/proxy/state-file.js";
import { pidAlive } from "../home.js";
import { socketAnswers } from "./inspect.js";
import type { RepairAction, RepairOutcome } from "./types.js";

export interface RepairDeps {
  home: string;
  environment?: string;
  provider?: string;
  providerObject?: Provider;
  now?: number;
  /** the state's location (see state/state-location.ts); default the SQLite file in the home */
  state?: string;
}

export async function applyRepair(action: RepairAction, deps: RepairDeps): Promise<RepairOutcome> {
  try {
    return await apply(action, deps);
  } catch (e) {
    return { ok: false, did: `failed: ${(e as Error).message}` };
  }
}

function withDb<T>(deps: Pick<RepairDeps, "home" | "environment" | "state">, fn: (db: StateDb) => T): T {
  const db = new StateDb(deps.state ?? homePaths(deps.home, deps.environment).stateDb);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

async function apply(a: RepairAction, deps: RepairDeps): Promise<RepairOutcome> {
  const now = deps.now ?? Date.now();
  switch (a.kind) {
    case "drop-lease": {
      // releaseLease only deletes the lease while `owner` still holds it: a controller that
      // took it over meanwhile keeps it.
      const still = withDb(deps, (db) => {
        db.releaseLease(a.service, a.owner);
        return db.leases().find((l) => l.service === a.service);
      });
      return still ? { ok: still.owner !== a.owner, did: `lease now held by ${still.owner}, left alone` } : { ok: true, did: `dropped the lease of dead controller ${a.owner} on ${a.service}` };
    }
    case "remove-file": {
      if (!existsSync(a.path)) return { ok: true, did: `${a.path} was already gone` };
      if (a.path.endsWith(".pid")) {
        const pid = Number(readFileSync(a.path, "utf8").trim());
        if (pidAlive(pid)) return { ok: false, did: `left ${a.path}: pid ${pid} is running now` };
      } else if (await socketAnswers(a.path)) {
        return { ok: false, did: `left ${a.path}: something listens on it now` };
      }
      rmSync(a.path, { force: true });
      return { ok: true, did: `removed ${a.path}` };
    }
    case "terminate-orphan": {
      const rec = withDb(deps, (db) => db.getInstance(a.instanceId));
      if (rec && rec.state !== "terminated") return { ok: false, did: `left ${a.instanceId}: state records it now` };
      const provider = deps.providerObject ?? createProvider(deps.provider ?? "local", { home: deps.home });
      await provider.terminate(a.instanceId, { graceMs: 2000 });
      return { ok: true, did: `terminated orphan instance ${a.instanceId}` };
    }
    case "mark-gone": {
      const done = withDb(deps, (db) =>
        db.tx(() => {
          const rec = db.getInstance(a.instanceId);
          if (!rec || rec.state === "terminated") return false;
          db.updateInstance(a.instanceId, { state: "terminated", routing: "none", terminatedAt: now, reason: "vanished (found gone by kiln doctor)" });
          db.addEvent({ at: now, level: "warn", service: rec.service, instance: rec.id, release: rec.release, message: `kiln doctor: instance ${rec.id} had vanished; marked terminated` });
          return true;
        }),
      );
      return { ok: true, did: done ? `marked ${a.instanceId} terminated in state` : `${a.instanceId} was already terminated` };
    }
    case "prune-routes": {
      const paths = homePaths(deps.home, deps.environment);
      if (await socketAnswers(paths.proxyAdminSocket)) return { ok: false, did: "left the saved table: the proxy is running now (the controller updates it)" };
      const loaded = await loadTableFile(a.file);
      if (loaded.kind !== "ok") return { ok: true, did: `${a.file} is ${loaded.kind} now, nothing to prune` };
      const drop = new Set(a.targetIds);
      const targets = loaded.table.targets.filter((t) => !drop.has(t.id));
      await saveTableFile(a.file, { ...loaded.table, targets });
      return { ok: true, did: `removed ${loaded.table.targets.length - targets.length} dead target(s) from ${a.file}` };
    }
    case "remove-rootfs": {
      const store = openStore(deps.home);
      if (await store.hasBlob(a.digest)) return { ok: false, did: `left ${a.path}: the image is in the store now` };
      if (!existsSync(a.path)) return { ok: true, did: `${a.path} was already gone` };
      // Aside first: an unpack treats an existing directory as complete.
      const aside = store.tmpPath(`doctor-rootfs-${a.digest.slice(7, 19)}`);
      await store.readIndex(); // makes sure tmp/ exists
      renameSync(a.path, aside);
      rmSync(aside, { recursive: true, force: true });
      return { ok: true, did: `removed ${a.path}` };
    }
  }
}
