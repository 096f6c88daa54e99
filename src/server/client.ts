// The CLI's side of the controller API: HTTP over the controller's unix socket.

import http from "node:http";
import { KilnError, type ErrorCode } from "../errors.js";
import { commandLine, currentActor } from "../actor.js";
import type { ChangeNote, DeployRequest, ReleaseView, RolloutView, StatusView } from "../controller/types.js";
import type { ChangeRecord, EventRecord } from "../state/db.js";
import type { MaintenanceMode } from "../traffic/router.js";

/** What the CLI records itself (a hook's outcome and output): audit rows and event lines. */
export interface RecordRequest {
  changes?: Array<ChangeNote & { action: string; result: string; release?: string; digest?: string; previousDigest?: string; detail?: string }>;
  events?: Array<{ level: EventRecord["level"]; message: string; release?: string }>;
}

// How a request fails when nobody answers on the socket, or the answerer dies mid-way (node's
// system error codes, not message text): the controller is down or restarting.
const UNREACHABLE = new Set(["ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT"]);

const unknownRoutes = new WeakSet<object>();
function markUnknownRoute(e: KilnError): KilnError {
  unknownRoutes.add(e);
  return e;
}
/** Whether `e` says the controller has no such route: it runs an older kiln. */
export function isUnknownRoute(e: unknown): boolean {
  return typeof e === "object" && e !== null && unknownRoutes.has(e);
}

/** Whether `e` says the controller did not answer at all (as opposed to answering with an error). */
export function isUnreachable(e: unknown): boolean {
  if (!(e instanceof KilnError) || e.code !== "KILN_E_CONTROLLER") return false;
  const code = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && UNREACHABLE.has(code);
}

/** This process's note: its actor and command line (a caller with a --reason passes its own). */
export function defaultNote(): ChangeNote {
  return { actor: currentActor(), command: commandLine(process.argv) };
}

export class ControllerClient {
  /** `upCommand`: how the user starts this controller, for the hint when it does not answer (an environment's needs its --env) */
  constructor(
    readonly socketPath: string,
    private readonly upCommand = "kiln up --detach",
  ) {}

  private request<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        { socketPath: this.socketPath, method, path, headers: data ? { "content-type": "application/json", "content-length": data.length } : {}, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          // The controller died while answering: as unreachable as one that never answered.
          res.on("error", (cause) => reject(this.unreachable(cause)));
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              // An older controller has no such route (its framework answers 404 in plain text).
              if (res.statusCode === 404) return reject(markUnknownRoute(new KilnError("KILN_E_CONTROLLER", `the controller does not know ${path.split("?")[0]} (it runs an older kiln)`, { hint: "restart it with this kiln: `kiln down` and `kiln up --detach`" })));
              return reject(new KilnError("KILN_E_CONTROLLER", `controller answered ${res.statusCode} with non-JSON`));
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (json as { error?: { code?: ErrorCode; message?: string; hint?: string } }).error ?? {};
              return reject(new KilnError(e.code ?? "KILN_E_CONTROLLER", e.message ?? `controller answered ${res.statusCode}`, { hint: e.hint }));
            }
            resolve(json as T);
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
      req.on("error", (cause) => reject(this.unreachable(cause)));
      req.end(data);
    });
  }

  private unreachable(cause: unknown): KilnError {
    return new KilnError("KILN_E_CONTROLLER", `controller unreachable at ${this.socketPath}`, { cause, hint: `start it with \`${this.upCommand}\`` });
  }

  /** Fail fast, saying how to start it, when no controller answers (a watcher reconnects only once it has followed something). */
  async requireRunning(): Promise<void> {
    if (!(await this.ping())) throw new KilnError("KILN_E_CONTROLLER", "the controller is not running", { hint: `start it with \`${this.upCommand}\`` });
  }

  async ping(): Promise<boolean> {
    try {
      await this.request("GET", "/v1/ping", undefined, 2000);
      return true;
    } catch {
      return false;
    }
  }
  status(): Promise<StatusView> {
    return this.request("GET", "/v1/status");
  }
  history(): Promise<{ releases: ReleaseView[]; rollouts: RolloutView[]; changes?: ChangeRecord[] }> {
    return this.request("GET", "/v1/history");
  }
  events(after: number): Promise<{ events: EventRecord[] }> {
    return this.request("GET", `/v1/events?after=${after}`);
  }
  /** the newest `n` events, oldest first */
  recentEvents(n: number): Promise<{ events: EventRecord[] }> {
    return this.request("GET", `/v1/events?tail=${n}`);
  }
  rollout(id: number): Promise<RolloutView> {
    return this.request("GET", `/v1/rollouts/${id}`);
  }
  /**
   * The rollout once it is no longer running or events newer than `after` exist (with them), at
   * the latest after `timeoutMs`. An older controller rejects it (isUnknownRoute).
   */
  waitRollout(id: number, after: number, timeoutMs: number): Promise<{ rollout: RolloutView; events: EventRecord[] }> {
    return this.request("GET", `/v1/rollouts/${id}/wait?after=${after}&timeoutMs=${timeoutMs}`, undefined, timeoutMs + 30_000);
  }
  // Every change carries a note (who, which command, why) for the audit trail; without one the
  // client sends this process's actor and command line.
  deploy(req: DeployRequest): Promise<{ release: ReleaseView; rollout: RolloutView }> {
    return this.request("POST", "/v1/deploy", { ...req, note: req.note ?? defaultNote() });
  }
  rollback(note: ChangeNote = defaultNote()): Promise<{ release: ReleaseView; rollout: RolloutView }> {
    return this.request("POST", "/v1/rollback", { note });
  }
  promote(note: ChangeNote = defaultNote()): Promise<RolloutView> {
    return this.request("POST", "/v1/promote", { note });
  }
  /** `kiln maintenance on|off`: mode undefined = off; answers once the router reports it */
  maintenance(mode: MaintenanceMode | undefined, note: ChangeNote = defaultNote()): Promise<{ maintenance: MaintenanceMode | null; tableVersion: number }> {
    return this.request("POST", "/v1/maintenance", mode === undefined ? { on: false, note } : { on: true, ...mode, note });
  }

  pause(note: ChangeNote = defaultNote()): Promise<RolloutView> {
    return this.request("POST", "/v1/pause", { note });
  }
  resume(note: ChangeNote = defaultNote()): Promise<RolloutView> {
    return this.request("POST", "/v1/resume", { note });
  }
  abort(note: ChangeNote = defaultNote()): Promise<RolloutView> {
    return this.request("POST", "/v1/abort", { note });
  }
  scale(instances: number, note: ChangeNote = defaultNote()): Promise<{ instances: number }> {
    return this.request("POST", "/v1/scale", { instances, note });
  }
  /** Record what the CLI did itself (hooks): audit rows and event lines, in the controller's state. */
  record(r: RecordRequest): Promise<{ ok: true }> {
    return this.request("POST", "/v1/record", r);
  }
  /** `kiln dashboard`: the dashboard's URL with a one-time token (the controller opens its listener if need be) */
  dashboard(readOnly: boolean, note: ChangeNote = defaultNote()): Promise<{ url: string; readOnly: boolean }> {
    return this.request("POST", "/v1/dashboard", { readOnly, note });
  }
  shutdown(stopInstances = true): Promise<{ ok: boolean }> {
    return this.request("POST", "/v1/shutdown", { stopInstances }, 120_000);
  }
}
