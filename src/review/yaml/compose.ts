// Docker Compose files and Swarm stack files (services with a `deploy:` section).

import { checkImageRef } from "../common/image-ref.js";
import { containerScript, runtimeScriptFindings, scanSecrets, scriptMap, underMount, varLibPaths } from "../common/located-checks.js";
import { entries, entry, get, items, num, str, type LNode } from "../located.js";
import type { RawFinding } from "../types.js";

export function checkCompose(doc: LNode): RawFinding[] {
  const out: RawFinding[] = [...scanSecrets(doc)];
  const topVolumes = get(doc, "volumes");
  for (const svc of entries(get(doc, "services"))) {
    const s = svc.value;
    const name = svc.key;
    const img = get(s, "image");
    const ref = str(img);
    if (img && ref !== undefined) out.push(...checkImageRef(ref, img.pos));
    const script = containerScript(get(s, "entrypoint"), get(s, "command"));
    if (script) out.push(...runtimeScriptFindings(script.text, scriptMap(script.node), `service ${name}'s command`));

    const targets: string[] = [];
    const deploy = entry(s, "deploy");
    for (const v of items(get(s, "volumes"))) {
      const { source, target, type } = volumeParts(v);
      if (target) targets.push(target);
      if (!deploy) continue;
      if (type === "bind" || (source && /^(\.|\/|~)/.test(source))) {
        out.push({ ruleId: "KR051", pos: v.pos, message: `service ${name} bind-mounts ${source ?? "a host path"}: its data stays on whichever node ran the task` });
      } else if (source && (type === undefined || type === "volume")) {
        const def = get(topVolumes, source);
        const driver = str(get(def, "driver"));
        const optType = str(get(def, "driver_opts", "type")) ?? "";
        const external = get(def, "external");
        if (!external && (driver === undefined || driver === "local") && !/nfs|cifs|efs/i.test(optType)) {
          out.push({ ruleId: "KR051", pos: v.pos, message: `service ${name} keeps data in volume "${source}" with the local driver: it exists only on the node where the task ran` });
        }
      }
    }

    const texts: { text: string; node: LNode }[] = [];
    const env = get(s, "environment");
    if (env?.kind === "map") for (const e of env.entries) {
      const v = str(e.value);
      if (v !== undefined) texts.push({ text: v, node: e.value });
    }
    for (const it of items(env)) {
      const v = str(it);
      if (v !== undefined) texts.push({ text: v, node: it });
    }
    for (const part of [get(s, "command"), get(s, "entrypoint")]) for (const it of part?.kind === "seq" ? part.items : part ? [part] : []) {
      const v = str(it);
      if (v !== undefined) texts.push({ text: v, node: it });
    }
    const reported = new Set<string>();
    for (const t of texts) for (const p of varLibPaths(t.text)) {
      if (underMount(p, targets) || reported.has(p)) continue;
      reported.add(p);
      out.push({ ruleId: "KR053", pos: t.node.pos, message: `service ${name} uses ${p}, which no volume covers: it is written inside the container and lost when the container is replaced` });
    }

    if (!deploy) continue;
    const uc = entry(deploy.value, "update_config");
    const fa = get(uc?.value, "failure_action");
    const order = get(uc?.value, "order");
    const failureAction = str(fa) ?? "pause";
    const ord = str(order) ?? "stop-first";
    if (failureAction === "pause" && ord === "stop-first") {
      out.push({
        ruleId: "KR015",
        pos: uc ? (order?.pos ?? fa?.pos ?? uc.keyPos) : deploy.keyPos,
        message: uc
          ? `service ${name}: update_config ${order ? "order: stop-first" : "(order defaults to stop-first)"} with ${fa ? "failure_action: pause" : "failure_action defaulting to pause"}: a bad image stops the old task and the update stalls with it gone`
          : `service ${name} has no update_config: Swarm's defaults (order: stop-first, failure_action: pause) stop the old task first and stall on a bad image`,
      });
    } else if (failureAction !== "rollback") {
      out.push({
        ruleId: "KR014",
        pos: fa?.pos ?? uc?.keyPos ?? deploy.keyPos,
        message: `service ${name}: failure_action ${failureAction}${fa ? "" : " (the default)"} does not roll a failed update back`,
      });
    }
    const par = entry(uc?.value, "parallelism");
    if (par && num(par.value) === 0) {
      out.push({ ruleId: "KR016", pos: par.value.pos, message: `service ${name}: parallelism 0 updates every task at once` });
    }
    const hc = entry(s, "healthcheck");
    if (!hc || str(get(hc.value, "disable")) === "true") {
      out.push({ ruleId: "KR017", pos: hc ? hc.keyPos : svc.keyPos, message: `service ${name} has no healthcheck: Swarm counts a new task as running as soon as its process starts` });
    }
    const grace = get(s, "stop_grace_period");
    const g = str(grace);
    if (grace && g !== undefined && /^0+(\.0+)?(s|ms|m)?$/.test(g)) {
      out.push({ ruleId: "KR018", pos: grace.pos, message: `service ${name}: stop_grace_period ${g} kills tasks without letting in-flight requests finish` });
    }
  }
  return out;
}

function volumeParts(v: LNode): { source?: string; target?: string; type?: string } {
  const s = str(v);
  if (s !== undefined) {
    const parts = s.split(":");
    if (parts.length === 1) return { target: parts[0] };
    return { source: parts[0], target: parts[1] };
  }
  return { source: str(get(v, "source")), target: str(get(v, "target")), type: str(get(v, "type")) };
}
