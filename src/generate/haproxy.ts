// kiln.yaml → HAProxy (`haproxy -f haproxy.cfg`), the data plane in front of a
// fleet found through DNS: kiln's health check as `option httpchk` with
// inter/fall/rise, instanceWarmup as slowstart, the listen address as the
// frontend. Blue-green gets two backends and a map file naming the live one,
// switched at runtime (`set map`) without a reload.

import type { Spec } from "../config/index.js";
import { headerLines, platformCapacity, platformLimits } from "./derive.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { hashComments } from "./yaml-out.js";

/** HAProxy time value in ms ("500" is 500 ms, the unit HAProxy assumes). */
function hms(ms: number): string {
  return `${Math.max(0, Math.round(ms))}ms`;
}

function serverLines(spec: Spec, prefix: string, host: string, slots: number): string[] {
  const h = spec.health;
  const warm = platformLimits(spec).warmup;
  const opts = [
    "check",
    `inter ${hms(Math.max(1, h.interval))}`,
    `fall ${h.unhealthyThreshold}`,
    `rise ${h.healthyThreshold}`,
    ...(warm > 0 ? [`slowstart ${hms(warm)}`] : []),
    "resolvers dns",
    "init-addr none",
  ];
  return [`  server-template ${prefix} ${slots} ${host}:${spec.image.port} ${opts.join(" ")}`];
}

function backend(spec: Spec, name: string, host: string, slots: number): string[] {
  return [
    `backend ${name}`,
    "  balance roundrobin",
    `  # kiln health: GET ${spec.health.path}, any 2xx healthy; every interval, unhealthy after unhealthyThreshold`,
    "  # failures (fall), healthy after healthyThreshold successes (rise); warmup ramps a new server in (slowstart)",
    `  option httpchk GET ${spec.health.path}`,
    "  http-check expect rstatus ^2[0-9][0-9]$",
    ...serverLines(spec, `${name}-`, host, slots),
  ];
}

/** Where the blue-green map is read from: absolute, since HAProxy resolves map paths against its working directory. */
export function mapPath(spec: Spec): string {
  return `/etc/haproxy/${spec.name}-active.map`;
}

export function emitHaproxy(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const h = spec.health;
  const cap = platformCapacity(spec);
  const blueGreen = spec.strategy.type === "blue-green";
  const header = hashComments([
    ...headerLines(spec, image, "haproxy"),
    "",
    "Instances are found through DNS: each name below must resolve to every instance of the fleet (a Swarm",
    `service's tasks.NAME, Consul's NAME.service.consul, a Kubernetes headless Service). Slots: ${blueGreen ? cap.instances : cap.maxTotal} per backend`,
    "(the fleet plus kiln's surge). Check with: haproxy -c -f haproxy.cfg",
    ...(blueGreen
      ? [
          "",
          `Blue-green: ${mapPath(spec)} (install ${spec.name}-active.map there) names the live backend. Once every`,
          "server of the other one is UP (show servers state), switch without a reload, and back the same way to roll back:",
          `  echo "set map ${mapPath(spec)} live ${spec.name}-green" | socat stdio /run/haproxy/${spec.name}.sock`,
          "then update the map file too, so a restart keeps the choice.",
        ]
      : []),
    "HAProxy has no health grace (kiln health.grace) and no rollout of its own: kiln, or the platform, replaces instances.",
  ]);
  const lines = [
    "global",
    "  maxconn 4000",
    `  stats socket /run/haproxy/${spec.name}.sock mode 600 level admin`,
    "",
    "defaults",
    "  mode http",
    "  option redispatch",
    "  retries 2",
    "  timeout connect 5s",
    "  timeout client 30s",
    "  timeout server 30s",
    `  # kiln health.timeout`,
    `  timeout check ${hms(Math.max(1, h.timeout))}`,
    "",
    "resolvers dns",
    "  parse-resolv-conf",
    "  hold valid 10s",
    "",
    `frontend ${spec.name}`,
    `  # kiln listen`,
    `  bind ${spec.listen}`,
    ...(blueGreen
      ? [`  # the live backend, named in ${mapPath(spec)}`, `  use_backend %[str(live),map(${mapPath(spec)},${spec.name}-blue)]`, ""]
      : [`  default_backend ${spec.name}`, ""]),
    ...(blueGreen
      ? [
          ...backend(spec, `${spec.name}-blue`, `${spec.name}-blue`, cap.instances),
          "",
          ...backend(spec, `${spec.name}-green`, `${spec.name}-green`, cap.instances),
        ]
      : backend(spec, spec.name, spec.name, cap.maxTotal)),
  ];
  const files: GeneratedFile[] = [{ path: "haproxy.cfg", content: `${header}\n${lines.join("\n")}\n` }];
  if (blueGreen) {
    files.push({
      path: `${spec.name}-active.map`,
      content: `# The backend that takes traffic: ${spec.name}-blue or ${spec.name}-green.\nlive ${spec.name}-blue\n`,
    });
  }
  return files;
}
