// kiln.yaml → Kubernetes: a Deployment (image by digest, kiln's health as
// probes, kiln's rolling bounds as maxSurge/maxUnavailable), a Service, and a
// PersistentVolumeClaim per declared volume. The pod template is shared with
// the Argo Rollouts target.

import type { Spec } from "../config/index.js";
import { listenPort } from "../derive/index.js";
import { headerLines, kubernetesRolling, launchEnv, platformCapacity, platformLimits, seconds, secondsMin1, userIds } from "./derive.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { yamlDocument, yamlStream, type YamlNote } from "./yaml-out.js";

/** kiln's controller gives a new instance 60 s (plus grace) to turn healthy before it counts as failed. */
const INSTANCE_DEADLINE_MS = 60_000;

export function labels(spec: Spec): Record<string, string> {
  return { "app.kubernetes.io/name": spec.name, "app.kubernetes.io/version": spec.version, "app.kubernetes.io/managed-by": "kiln" };
}

export function selector(spec: Spec): Record<string, string> {
  return { "app.kubernetes.io/name": spec.name };
}

export function annotations(image: ImageInfo): Record<string, string> {
  return {
    "kiln.dev/image-digest": image.digest,
    "kiln.dev/image-created": image.created,
    "kiln.dev/image-name": image.timestampedName,
    ...(image.revision ? { "kiln.dev/revision": image.revision } : {}),
  };
}

export function claimName(spec: Spec, volume: string): string {
  return `${spec.name}-${volume}`;
}

/** The pod template both Deployment and Rollout run. */
export function podTemplate(spec: Spec, image: ImageInfo): Record<string, unknown> {
  const h = spec.health;
  const { uid, gid } = userIds(spec);
  const env = launchEnv(spec);
  const period = secondsMin1(h.interval);
  const httpGet = { path: h.path, port: "http" };
  return {
    metadata: { labels: labels(spec), annotations: annotations(image) },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: Math.max(1, seconds(spec.drainTimeout)),
      securityContext: { runAsNonRoot: true, runAsUser: uid, runAsGroup: gid, fsGroup: gid, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: spec.name,
          image: image.reference,
          imagePullPolicy: "IfNotPresent",
          ports: [{ name: "http", containerPort: spec.image.port, protocol: "TCP" }],
          env: Object.keys(env).map((name) => ({ name, value: env[name] })),
          startupProbe: {
            httpGet,
            periodSeconds: period,
            timeoutSeconds: secondsMin1(h.timeout),
            failureThreshold: Math.max(1, Math.ceil((INSTANCE_DEADLINE_MS + h.grace) / (period * 1000))),
          },
          readinessProbe: {
            httpGet,
            periodSeconds: period,
            timeoutSeconds: secondsMin1(h.timeout),
            successThreshold: h.healthyThreshold,
            failureThreshold: h.unhealthyThreshold,
          },
          livenessProbe: {
            httpGet,
            periodSeconds: period,
            timeoutSeconds: secondsMin1(h.timeout),
            failureThreshold: h.unhealthyThreshold,
          },
          securityContext: {
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            runAsNonRoot: true,
            runAsUser: uid,
            runAsGroup: gid,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [
            ...spec.volumes.map((v) => ({ name: v.name, mountPath: v.path })),
            { name: "tmp", mountPath: "/tmp" },
          ],
        },
      ],
      volumes: [
        ...spec.volumes.map((v) => ({ name: v.name, persistentVolumeClaim: { claimName: claimName(spec, v.name) } })),
        { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } },
      ],
    },
  };
}

/** Notes on the pod template's fields, at `prefix` (the path of the template in its document). */
export function podTemplateNotes(prefix: readonly (string | number)[]): YamlNote[] {
  const c = [...prefix, "spec", "containers", 0];
  return [
    { path: [...prefix, "spec", "terminationGracePeriodSeconds"], text: "kiln drainTimeout" },
    { path: [...c, "image"], text: "by digest: the pod runs exactly the baked image" },
    { path: [...c, "startupProbe"], text: `kiln's per-instance deadline: healthy within 60 s + health.grace, or the instance failed` },
    { path: [...c, "readinessProbe"], text: "kiln health: path, interval, timeout (whole seconds, at least 1), healthy/unhealthy thresholds" },
    { path: [...c, "livenessProbe"], text: "kiln heals an instance that stops passing its health check" },
    { path: [...c, "securityContext"], text: "read-only root, never root: the image is the configuration" },
    { path: [...prefix, "spec", "volumes"], text: "declared volumes only (claims below); /tmp is scratch memory, as in kiln's instances. No hostPath." },
  ];
}

export function service(spec: Spec, name: string, note: string): string {
  return yamlDocument(
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, labels: labels(spec) },
      spec: { type: "ClusterIP", selector: selector(spec), ports: [{ name: "http", port: listenPort(spec), targetPort: "http", protocol: "TCP" }] },
    },
    { header: [note] },
  );
}

export function claims(spec: Spec): string[] {
  return spec.volumes.map((v) =>
    yamlDocument(
      {
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: claimName(spec, v.name), labels: labels(spec) },
        spec: { accessModes: ["ReadWriteMany"], resources: { requests: { storage: "1Gi" } } },
      },
      {
        header: [`kiln volume "${v.name}" (${v.path}): state outside the image, shared by old and new pods during a rollout.`],
        notes: [
          { path: ["spec", "accessModes"], text: "old and new pods run side by side during a rollout" },
          { path: ["spec", "resources"], text: "kiln.yaml gives no size: set yours (and a storageClassName that supports ReadWriteMany)" },
        ],
      },
    ),
  );
}

export function emitKubernetes(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const rolling = kubernetesRolling(spec);
  const cap = platformCapacity(spec);
  const { deadline } = platformLimits(spec);
  const minReady = seconds(platformLimits(spec).warmup);
  const header = [...headerLines(spec, image, "kubernetes")];
  if (spec.strategy.type === "blue-green") {
    header.push(
      "",
      "kiln.yaml asks for blue-green, which a Deployment cannot do: the nearest is a rolling update that starts the",
      "whole new ReplicaSet before any old pod goes (maxSurge = replicas). Use `kiln generate argo-rollouts` for a real",
      "blue-green with a kept previous fleet.",
    );
  } else {
    header.push("", `Rolling: ${cap.instances} replicas, at most ${cap.surge} extra, at least ${cap.minHealthy} ready.`);
  }
  if (platformLimits(spec).autoRollback) {
    header.push("A Deployment never rolls back by itself (it reports ProgressDeadlineExceeded): kiln's autoRollback needs `kubectl rollout undo`, or Argo Rollouts.");
  }
  const deployment = yamlDocument(
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: spec.name, labels: labels(spec), annotations: annotations(image) },
      spec: {
        replicas: spec.instances,
        revisionHistoryLimit: 10,
        minReadySeconds: minReady,
        progressDeadlineSeconds: Math.max(seconds(deadline), minReady + 1),
        selector: { matchLabels: selector(spec) },
        strategy: { type: "RollingUpdate", rollingUpdate: rolling },
        template: podTemplate(spec, image),
      },
    },
    {
      header,
      notes: [
        { path: ["spec", "replicas"], text: "kiln instances" },
        { path: ["spec", "minReadySeconds"], text: "kiln strategy.rolling.instanceWarmup" },
        { path: ["spec", "progressDeadlineSeconds"], text: `kiln strategy.${spec.strategy.type === "blue-green" ? "blueGreen" : "rolling"}.deadline` },
        { path: ["spec", "strategy", "rollingUpdate", "maxSurge"], text: "from min/max healthy percent, as a count (percentages would round differently)" },
        { path: ["spec", "strategy", "rollingUpdate", "maxUnavailable"], text: "replicas − kiln's healthy floor" },
        ...podTemplateNotes(["spec", "template"]),
      ],
    },
  );
  return [
    {
      path: "kubernetes.yaml",
      content: yamlStream([deployment, service(spec, spec.name, `Clients reach the fleet on kiln's listen port (${listenPort(spec)}).`), ...claims(spec)]),
    },
  ];
}
