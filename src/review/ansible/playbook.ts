// Ansible playbooks run against live servers: the "re-converging" antipattern. A play that
// installs packages, templates configuration or restarts services on hosts that already
// serve makes every host the product of its history (KR033); one that rolls through the
// fleet with `serial` but never checks a batch's health before the next rolls a broken
// release everywhere (KR072).
//
//   - hosts: web / tasks: [apt: name=nginx state=latest]        → KR033 at the apt task
//   - hosts: web / serial: 2 / tasks: [copy …, service restarted] → KR033, KR072 at serial
//   - hosts: web / serial: 2 / … uri: … until: … retries: … max_fail_percentage: 0 → KR033 only
//   - hosts: localhost / tasks: [amazon.aws.autoscaling_group …] → nothing: it replaces, in the cloud
//   - hosts: default (Packer's ansible provisioner), or a playbook under packer/ → a bake: nothing

import { entries, entry, get, items, num, str, type LNode } from "../located.js";
import type { RawFinding } from "../types.js";

const PLAY_KEYS = ["tasks", "pre_tasks", "post_tasks", "roles", "handlers"];

/** Modules that change a host's packages, files or services. */
const CONFIGURES = /^(apt|yum|dnf|package|pip|npm|gem|apk|zypper|template|copy|lineinfile|blockinfile|replace|unarchive|get_url|git|synchronize|systemd|systemd_service|service|docker_container|docker_compose|docker_compose_v2|community\.docker\.docker_container|community\.docker\.docker_compose_v2|ansible\.posix\.synchronize)$/;

/** Tasks that check health: an HTTP check or a port/path wait. */
const HEALTH = /^(uri|wait_for|wait_for_connection)$/;

const TASK_KEYS = new Set(["name", "when", "become", "become_user", "register", "tags", "notify", "loop", "with_items", "until", "retries", "delay", "ignore_errors", "changed_when", "failed_when", "vars", "environment", "delegate_to", "run_once", "no_log", "args", "check_mode", "diff", "throttle", "listen", "loop_control", "any_errors_fatal", "become_method", "local_action", "connection"]);

export function isPlaybook(doc: LNode | undefined): boolean {
  return doc?.kind === "seq" && doc.items.length > 0 && doc.items.some((p) => entry(p, "hosts") !== undefined && PLAY_KEYS.some((k) => entry(p, k) !== undefined));
}

function moduleOf(task: LNode): { name: string; at: LNode } | undefined {
  for (const e of entries(task)) {
    if (TASK_KEYS.has(e.key)) continue;
    return { name: e.key.replace(/^ansible\.(builtin|legacy)\./, ""), at: task };
  }
  return undefined;
}

/** Every task of a play, blocks opened (block / rescue / always). */
function tasksOf(play: LNode): LNode[] {
  const out: LNode[] = [];
  const visit = (list: LNode | undefined) => {
    for (const t of items(list)) {
      if (entry(t, "block")) {
        visit(get(t, "block"));
        visit(get(t, "rescue"));
        visit(get(t, "always"));
      } else out.push(t);
    }
  };
  for (const k of ["pre_tasks", "tasks", "post_tasks", "handlers"]) visit(get(play, k));
  return out;
}

function isLocal(play: LNode): boolean {
  const hosts = str(get(play, "hosts")) ?? "";
  return /^(localhost|127\.0\.0\.1|::1)$/.test(hosts.trim()) || str(get(play, "connection")) === "local";
}

export function checkPlaybook(doc: LNode, role: "bake" | "deploy"): RawFinding[] {
  const out: RawFinding[] = [];
  if (role === "bake") return out;
  for (const play of items(doc)) {
    const hosts = str(get(play, "hosts"));
    if (hosts === undefined || isLocal(play) || hosts.trim() === "default") continue;
    const tasks = tasksOf(play);
    const mods = tasks.map((t) => ({ t, m: moduleOf(t) }));
    const first = mods.find((x) => x.m && CONFIGURES.test(x.m.name));
    if (first) {
      const used = [...new Set(mods.filter((x) => x.m && CONFIGURES.test(x.m.name)).map((x) => x.m!.name))].slice(0, 3).join(", ");
      out.push({
        ruleId: "KR033",
        pos: first.t.pos,
        message: `this play changes running hosts "${hosts}" in place (${used}): each host becomes the product of every run before it`,
        fix: "run this play at bake time instead (Packer's `ansible` provisioner, `hosts: default`), then replace the hosts with instances of the new image (an instance refresh, or kiln deploy)",
      });
    }
    const serial = entry(play, "serial");
    if (serial && first) {
      const checks = mods.some((x) => x.m && HEALTH.test(x.m.name));
      const stops = num(get(play, "max_fail_percentage")) === 0 || str(get(play, "any_errors_fatal")) === "true";
      if (!checks || !stops) {
        out.push({
          ruleId: "KR072",
          pos: serial.keyPos,
          message: !checks ? "`serial` rolls through the fleet, but no task checks a batch's health (uri/wait_for) before the next batch" : "`serial` with a health check, but without `max_fail_percentage: 0` (or `any_errors_fatal`) a failing batch does not stop the play",
        });
      }
    }
  }
  return out;
}
