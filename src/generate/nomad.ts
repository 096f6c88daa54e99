// kiln.yaml → a Nomad job (`nomad job run NAME.nomad.hcl`): one service group
// of `instances` allocations running the image by digest with the docker
// driver, kiln's health as a Consul HTTP check, and kiln's rollout as the
// `update` block (canary = count for blue-green).

import type { Spec } from "../config/index.js";
import { sharedVolumeName } from "../derive/index.js";
import { goDuration, headerLines, launchEnv, nomadUpdate, platformCapacity, seconds } from "./derive.js";
import { attr, blank, block, comment, renderHcl, type HclItem } from "./hcl.js";
import type { GeneratedFile, ImageInfo } from "./types.js";

export function emitNomad(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const h = spec.health;
  const u = nomadUpdate(spec);
  const cap = platformCapacity(spec);
  const blueGreen = spec.strategy.type === "blue-green";
  const env = launchEnv(spec);
  const atLeast1s = (ms: number) => goDuration(Math.max(1000, ms));

  const update = block("update", [], [
    attr("max_parallel", u.maxParallel),
    attr("health_check", "checks"),
    attr("min_healthy_time", goDuration(u.minHealthyTime)),
    attr("healthy_deadline", goDuration(u.healthyDeadline)),
    attr("progress_deadline", goDuration(u.progressDeadline)),
    attr("auto_revert", u.autoRevert),
    attr("canary", u.canary),
    ...(blueGreen ? [attr("auto_promote", u.autoPromote)] : []),
  ]);

  const group: HclItem[] = [
    attr("count", spec.instances),
    blank,
    block("network", [], [block("port", ["http"], [attr("to", spec.image.port)])]),
  ];
  for (const v of spec.volumes) {
    group.push(
      blank,
      comment(`kiln volume "${v.name}": state outside the image, shared by old and new allocations (a CSI volume you register).`),
      block("volume", [v.name], [
        attr("type", "csi"),
        attr("source", sharedVolumeName(spec.name, v.name)),
        attr("access_mode", "multi-node-multi-writer"),
        attr("attachment_mode", "file-system"),
      ]),
    );
  }
  group.push(
    blank,
    block("service", [], [
      attr("name", spec.name),
      attr("port", "http"),
      attr("tags", [`version-${spec.version}`]),
      blank,
      comment("kiln health: path, interval and timeout (Nomad's minimum is 1s), thresholds"),
      block("check", [], [
        attr("type", "http"),
        attr("path", h.path),
        attr("interval", atLeast1s(h.interval)),
        attr("timeout", atLeast1s(h.timeout)),
        attr("success_before_passing", h.healthyThreshold),
        attr("failures_before_critical", h.unhealthyThreshold),
        blank,
        comment("kiln heals an instance that stops passing; health.grace is the time failures are ignored after start"),
        block("check_restart", [], [attr("limit", h.unhealthyThreshold), attr("grace", goDuration(h.grace))]),
      ]),
    ]),
    blank,
    block("task", [spec.name], [
      attr("driver", "docker"),
      attr("user", spec.image.user),
      comment("kiln drainTimeout: deregistered, then in-flight requests get this long before the stop signal"),
      attr("shutdown_delay", goDuration(spec.drainTimeout)),
      attr("kill_timeout", goDuration(Math.max(1000, Math.min(spec.drainTimeout, 10_000)))),
      blank,
      block("config", [], [
        comment("by digest: every allocation runs exactly the baked image"),
        attr("image", image.reference),
        attr("ports", ["http"]),
        attr("readonly_rootfs", true),
        blank,
        block("mount", [], [attr("type", "tmpfs"), attr("target", "/tmp"), attr("readonly", false), block("tmpfs_options", [], [attr("size", 67108864)])]),
      ]),
      blank,
      block("env", [], Object.keys(env).map((k) => attr(k, env[k]!))),
      ...spec.volumes.flatMap((v) => [blank, block("volume_mount", [], [attr("volume", v.name), attr("destination", v.path)])]),
    ]),
  );

  const content = renderHcl([
    ...headerLines(spec, image, "nomad").map((l) => comment(l)),
    comment(""),
    comment(
      blueGreen
        ? `Blue-green: ${cap.instances} canaries start beside the old allocations; ${u.autoPromote ? "promoted once all are healthy" : "promote with `nomad deployment promote`"}.\nNomad stops the old allocations at promotion: kiln's keepPreviousFor has no equivalent (a revert is a new deployment).`
        : `Rolling: ${u.maxParallel} allocation(s) at a time. Nomad stops an old allocation before starting its replacement,\nso kiln's launch-first surge (${cap.surge}) is not kept: during the update ${Math.max(0, cap.instances - u.maxParallel)} of ${cap.instances} keep serving.`,
    ),
    blank,
    block("job", [spec.name], [
      attr("type", "service"),
      attr("datacenters", ["dc1"]),
      blank,
      block("meta", [], [
        attr("kiln_version", spec.version),
        attr("kiln_image_digest", image.digest),
        attr("kiln_image_name", image.timestampedName),
      ]),
      blank,
      comment("kiln's strategy: max_parallel from min/max healthy, min_healthy_time = instanceWarmup,"),
      comment(`progress_deadline = the rollout deadline (${seconds(u.progressDeadline)} s), auto_revert = autoRollback`),
      update,
      blank,
      block("group", [spec.name], group),
    ]),
  ]);
  return [{ path: `${spec.name}.nomad.hcl`, content }];
}
