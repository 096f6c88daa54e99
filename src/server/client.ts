// The CLI's side of the controller API: HTTP over the controller's unix socket.

import http from "node:http";
import { KilnError, type ErrorCode } from "../errors.js";
import type { DeployRequest, ReleaseView, RolloutView, StatusView } from "../controller/types.js";
import type { EventRecord } from "../state/db.js";
import type { MaintenanceMode } from "../traffic/router.js";

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
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
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
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", (cause) =>
        reject(new KilnError("KILN_E_CONTROLLER", `controller unreachable at ${this.socketPath}`, { cause, hint: `start it with \`${this.upCommand}\` (see \`kiln status\`)` })),
      );
      req.end(data);
    });
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
  history(): Promise<{ releases: ReleaseView[]; rollouts: RolloutView[] }> {
    return this.request("GET", "/v1/history");
  }
  events(after: number): Promise<{ events: EventRecord[] }> {
    return this.request("GET", `/v1/events?after=${after}`);
  }
  rollout(id: number): Promise<RolloutView> {
    return this.request("GET", `/v1/rollouts/${id}`);
  }
  deploy(req: DeployRequest): Promise<{ release: ReleaseView; rollout: RolloutView }> {
    return this.request("POST", "/v1/deploy", req);
  }
  rollback(): Promise<{ release: ReleaseView; rollout: RolloutView }> {
    return this.request("POST", "/v1/rollback", {});
  }
  promote(): Promise<RolloutView> {
    return this.request("POST", "/v1/promote", {});
  }
  /** `kiln maintenance on|off`: mode undefined = off; answers once the router reports it */
  maintenance(mode: MaintenanceMode | undefined): Promise<{ maintenance: MaintenanceMode | null; tableVersion: number }> {
    return this.request("POST", "/v1/maintenance", mode === undefined ? { on: false } : { on: true, ...mode });
  }

  pause(): Promise<RolloutView> {
    return this.request("POST", "/v1/pause", {});
  }
  resume(): Promise<RolloutView> {
    return this.request("POST", "/v1/resume", {});
  }
  abort(): Promise<RolloutView> {
    return this.request("POST", "/v1/abort", {});
  }
  scale(instances: number): Promise<{ instances: number }> {
    return this.request("POST", "/v1/scale", { instances });
  }
  shutdown(stopInstances = true): Promise<{ ok: boolean }> {
    return this.request("POST", "/v1/shutdown", { stopInstances }, 120_000);
  }
}
