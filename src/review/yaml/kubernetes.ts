// Kubernetes and Argo Rollouts manifests: rollout strategy, readiness, images, state on the
// node, start commands, secrets, termination grace.

import { checkImageRef } from "../common/image-ref.js";
import { containerScript, runtimeScriptFindings, scanSecrets, scriptMap, underMount, varLibPaths } from "../common/located-checks.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import { entries, entry, get, items, num, str, type LNode } from "../located.js";
import type { RawFinding } from "../types.js";

const ROLLED = new Set(["Deployment", "StatefulSet", "DaemonSet", "Rollout", "ReplicaSet"]);

export function checkKubernetes(doc: LNode): RawFinding[] {
  const kind = str(get(doc, "kind")) ?? "";
  const name = str(get(doc, "metadata", "name")) ?? kind;
  const out: RawFinding[] = [];
  if (kind === "Secret") return secretManifest(doc, name);
  out.push(...scanSecrets(doc));
  const spec = get(doc, "spec");
  const pod =
    kind === "Pod" ? spec : kind === "CronJob" ? get(spec, "jobTemplate", "spec", "template", "spec") : get(spec, "template", "spec");
  if (!pod) return out;
  const label = `${kind} ${name}`;

  if (kind === "Deployment") out.push(...deploymentStrategy(spec, label));
  if (kind === "Rollout") out.push(...rolloutStrategy(spec, label));

  const grace = entry(pod, "terminationGracePeriodSeconds");
  if (grace && num(grace.value) === 0 && ROLLED.has(kind)) {
    out.push({ ruleId: "KR018", pos: grace.value.pos, message: `${label}: terminationGracePeriodSeconds 0 kills pods without letting in-flight requests finish` });
  }

  const volumes = items(get(pod, "volumes"));
  if (kind !== "DaemonSet") {
    for (const v of volumes) {
      const hp = entry(v, "hostPath");
      if (hp) {
        out.push({
          ruleId: "KR050",
          pos: hp.keyPos,
          message: `${label}: volume "${str(get(v, "name")) ?? "?"}" is a hostPath (${str(get(hp.value, "path")) ?? "?"}): its data lives on whichever node the pod runs on`,
        });
      }
    }
  }

  const containers = items(get(pod, "containers"));
  for (const c of [...containers, ...items(get(pod, "initContainers"))]) {
    const img = get(c, "image");
    const ref = str(img);
    if (img && ref !== undefined) out.push(...checkImageRef(ref, img.pos));
    const cname = str(get(c, "name")) ?? "?";
    const script = containerScript(get(c, "command"), get(c, "args"));
    if (script) out.push(...runtimeScriptFindings(script.text, scriptMap(script.node), `container ${cname}`));
    const post = get(c, "lifecycle", "postStart", "exec", "command");
    const postScript = post ? containerScript(post) : undefined;
    if (postScript) out.push(...runtimeScriptFindings(postScript.text, scriptMap(postScript.node), `the postStart hook of container ${cname}`));
    const mounts = items(get(c, "volumeMounts")).map((m) => str(get(m, "mountPath")) ?? "");
    const texts: { text: string; node: LNode }[] = [];
    for (const e of items(get(c, "env"))) {
      const v = get(e, "value");
      const s = str(v);
      if (v && s !== undefined) texts.push({ text: s, node: v });
    }
    for (const part of [get(c, "command"), get(c, "args")]) for (const it of part?.kind === "seq" ? part.items : part ? [part] : []) {
      const s = str(it);
      if (s !== undefined) texts.push({ text: s, node: it });
    }
    const reported = new Set<string>();
    for (const t of texts) {
      for (const p of varLibPaths(t.text)) {
        if (underMount(p, mounts) || reported.has(p)) continue;
        reported.add(p);
        out.push({ ruleId: "KR053", pos: t.node.pos, message: `container ${cname} uses ${p}, which no volumeMount covers: it is written to the container's own filesystem and lost on replacement` });
      }
    }
  }
  if (ROLLED.has(kind)) {
    for (const c of containers) {
      if (!entry(c, "readinessProbe")) {
        const n = entry(c, "name");
        out.push({
          ruleId: "KR017",
          pos: n ? n.value.pos : c.pos,
          message: `${label}: container ${str(n?.value) ?? "?"} has no readinessProbe, so a new pod counts as ready as soon as it starts and old pods are removed before it can serve`,
        });
      }
    }
  }
  return out;
}

function replicasOf(spec: LNode | undefined): number {
  return num(get(spec, "replicas")) ?? 1;
}

/** maxUnavailable as an instance count: k8s rounds percentages of maxUnavailable down. */
function unavailable(v: LNode | undefined, replicas: number): number | undefined {
  const n = num(v);
  if (n !== undefined) return n;
  const s = str(v);
  const m = s !== undefined ? /^(\d+)%$/.exec(s) : null;
  return m ? Math.floor((replicas * Number(m[1])) / 100) : undefined;
}

function deploymentStrategy(spec: LNode | undefined, label: string): RawFinding[] {
  const st = get(spec, "strategy");
  const type = entry(st, "type");
  if (str(type?.value) === "Recreate") {
    return [{ ruleId: "KR016", pos: type!.value.pos, message: `${label} uses the Recreate strategy: every old pod is stopped before any new one starts` }];
  }
  const mu = entry(get(st, "rollingUpdate"), "maxUnavailable");
  const replicas = replicasOf(spec);
  const n = unavailable(mu?.value, replicas);
  if (mu && n !== undefined && n >= replicas && replicas > 0) {
    return [{ ruleId: "KR016", pos: mu.value.pos, message: `${label}: maxUnavailable ${str(mu.value)} of ${replicas} replica${replicas === 1 ? "" : "s"} lets the rollout take every pod down at once` }];
  }
  return [];
}

function rolloutStrategy(spec: LNode | undefined, label: string): RawFinding[] {
  const out: RawFinding[] = [];
  const canary = get(spec, "strategy", "canary");
  const mu = entry(canary, "maxUnavailable");
  const replicas = replicasOf(spec);
  const n = unavailable(mu?.value, replicas);
  if (mu && n !== undefined && n >= replicas && replicas > 0) {
    out.push({ ruleId: "KR016", pos: mu.value.pos, message: `${label}: canary maxUnavailable ${str(mu.value)} of ${replicas} replica${replicas === 1 ? "" : "s"} lets the rollout take every pod down at once` });
  }
  const bg = get(spec, "strategy", "blueGreen");
  const delay = entry(bg, "scaleDownDelaySeconds");
  if (delay && num(delay.value) === 0) {
    out.push({ ruleId: "KR019", pos: delay.value.pos, message: `${label}: scaleDownDelaySeconds 0 scales the previous (blue) ReplicaSet down the moment traffic switches` });
  }
  return out;
}

function secretManifest(doc: LNode, name: string): RawFinding[] {
  const out: RawFinding[] = [];
  for (const key of ["stringData", "data"]) {
    for (const e of entries(get(doc, key))) {
      const v = str(e.value);
      const secretKey = isSecretName(e.key) || /(^|[._-])(key|pem|crt|p12)$|dockerconfigjson|credentials|^\.env$/i.test(e.key);
      if (secretKey && v !== undefined && looksLikeLiteralSecret(v)) {
        out.push({ ruleId: "KR062", pos: e.value.pos, message: `Secret ${name} holds the value of "${e.key}" in the manifest (${key === "data" ? "base64 is not encryption" : "in clear text"})` });
      }
    }
  }
  return out;
}
