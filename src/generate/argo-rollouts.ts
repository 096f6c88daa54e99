// kiln.yaml → an Argo Rollouts Rollout: blueGreen (active + preview Services,
// auto or manual promotion, the previous ReplicaSet kept for keepPreviousFor)
// or, for kiln's rolling strategy, a canary without steps (Argo's rolling
// update) bounded by kiln's min/max healthy. Same pod template as the
// kubernetes target.

import type { Spec } from "../config/index.js";
import { listenPort } from "../derive/index.js";
import { headerLines, kubernetesRolling, platformCapacity, platformLimits, seconds } from "./derive.js";
import { annotations, claims, labels, podTemplate, podTemplateNotes, selector, service } from "./kubernetes.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { yamlDocument, yamlStream, type YamlNote } from "./yaml-out.js";

export function emitArgoRollouts(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const { deadline, autoRollback } = platformLimits(spec);
  const minReady = seconds(platformLimits(spec).warmup);
  const blueGreen = spec.strategy.type === "blue-green";
  const preview = `${spec.name}-preview`;
  const strategy = blueGreen
    ? {
        blueGreen: {
          activeService: spec.name,
          previewService: preview,
          autoPromotionEnabled: spec.strategy.blueGreen.promotion === "auto",
          scaleDownDelaySeconds: seconds(spec.strategy.blueGreen.keepPreviousFor),
        },
      }
    : { canary: kubernetesRolling(spec) };
  const s = ["spec", "strategy"];
  const notes: YamlNote[] = [
    { path: ["spec", "replicas"], text: "kiln instances" },
    { path: ["spec", "progressDeadlineSeconds"], text: `kiln strategy.${blueGreen ? "blueGreen" : "rolling"}.deadline` },
    { path: ["spec", "progressDeadlineAbort"], text: `kiln autoRollback: past the deadline, abort back to the stable ReplicaSet` },
    ...(blueGreen
      ? [
          { path: [...s, "blueGreen", "autoPromotionEnabled"], text: `kiln strategy.blueGreen.promotion: ${spec.strategy.blueGreen.promotion}` },
          { path: [...s, "blueGreen", "scaleDownDelaySeconds"], text: "kiln strategy.blueGreen.keepPreviousFor: the old ReplicaSet stays up for instant rollback" },
        ]
      : [
          { path: ["spec", "minReadySeconds"], text: "kiln strategy.rolling.instanceWarmup" },
          { path: [...s, "canary", "maxSurge"], text: "from min/max healthy percent, as a count" },
          { path: [...s, "canary", "maxUnavailable"], text: "replicas − kiln's healthy floor" },
        ]),
    ...podTemplateNotes(["spec", "template"]),
  ];
  const cap = platformCapacity(spec);
  const rollout = yamlDocument(
    {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "Rollout",
      metadata: { name: spec.name, labels: labels(spec), annotations: annotations(image) },
      spec: {
        replicas: spec.instances,
        revisionHistoryLimit: 10,
        minReadySeconds: minReady,
        progressDeadlineSeconds: Math.max(seconds(deadline), minReady + 1),
        progressDeadlineAbort: autoRollback,
        selector: { matchLabels: selector(spec) },
        strategy,
        template: podTemplate(spec, image),
      },
    },
    {
      header: [
        ...headerLines(spec, image, "argo-rollouts"),
        "",
        blueGreen
          ? `Blue-green: ${cap.instances} new pods behind ${preview}, switched to ${spec.name} ${spec.strategy.blueGreen.promotion === "auto" ? "once all are ready" : "on `kubectl argo rollouts promote " + spec.name + "`"}; rollback inside the keep window: \`kubectl argo rollouts undo ${spec.name}\`.`
          : `Rolling (a canary without steps): ${cap.instances} replicas, at most ${cap.surge} extra, at least ${cap.minHealthy} ready.`,
      ],
      notes,
    },
  );
  const services = blueGreen
    ? [
        service(spec, spec.name, `Active Service: Argo Rollouts points it at the live ReplicaSet. Clients use port ${listenPort(spec)}.`),
        service(spec, preview, "Preview Service: the new ReplicaSet before promotion."),
      ]
    : [service(spec, spec.name, `Clients reach the fleet on kiln's listen port (${listenPort(spec)}).`)];
  return [{ path: "argo-rollouts.yaml", content: yamlStream([rollout, ...services, ...claims(spec)]) }];
}
