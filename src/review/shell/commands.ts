// What one simple command does to a fleet, from its argv: removes old capacity, switches
// traffic, confirms health, probes health (output only), enters an instance, configures
// one, or waits out a rollback window. Pure: argv in, classification out.

import type { RawFinding } from "../types.js";
import { checkImageRef } from "../common/image-ref.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import { checkRefreshPreferences } from "../common/refresh.js";
import { fromJS } from "../located.js";
import type { WordInfo } from "./ast.js";

export type Effect =
  | "remove" // old capacity goes away (terminate, delete, scale to 0, deregister, stop)
  | "cutover" // traffic moves to another fleet (listener, DNS, Service selector)
  | "health" // exit status 0 means the new capacity is healthy
  | "probe" // prints health state; its exit status says nothing
  | "filter" // grep/jq -e: turns a probe's output into an exit status
  | "enter" // runs commands inside running instances
  | "configure" // configures running instances (ansible, scp of config)
  | "soak" // waits a rollback window (long sleep, manual approval)
  | "none";

export interface Classified {
  /** e.g. "aws ec2 terminate-instances" */
  name: string;
  effect: Effect;
  /** a script this command runs somewhere else: ssh, exec, SSM, bash -c */
  inner?: { text: string; via: string; remote: boolean };
  findings: RawFinding[];
  /** container names this command starts (`run --name`) or removes (`rm`, `stop`, `kill`) */
  container?: { run?: string; removes?: string[] };
}

/** Commands that only run their arguments as another command. */
export function unwrap(argv: WordInfo[]): WordInfo[] {
  let a = argv;
  for (let guard = 0; guard < 8 && a.length > 0; guard++) {
    const c = base(a[0]!.text);
    if (c === "sudo") {
      let i = 1;
      while (i < a.length && a[i]!.text.startsWith("-")) i += /^-[ugCDhprtT]$/.test(a[i]!.text) ? 2 : 1;
      a = a.slice(i);
    } else if (c === "timeout") {
      let i = 1;
      while (i < a.length && a[i]!.text.startsWith("-")) i += /^(-s|-k|--signal|--kill-after)$/.test(a[i]!.text) ? 2 : 1;
      a = a.slice(i + 1);
    } else if (c === "env") {
      let i = 1;
      while (i < a.length && (a[i]!.text.startsWith("-") || /^[A-Za-z_][A-Za-z0-9_]*=/.test(a[i]!.text))) i++;
      a = a.slice(i);
    } else if (c === "nice" || c === "ionice" || c === "stdbuf") {
      let i = 1;
      while (i < a.length && a[i]!.text.startsWith("-")) i += /^-n$/.test(a[i]!.text) ? 2 : 1;
      a = a.slice(i);
    } else if (c === "nohup" || c === "time" || c === "command" || c === "exec" || c === "builtin") {
      a = a.slice(1);
    } else if (c === "xargs") {
      let i = 1;
      while (i < a.length && a[i]!.text.startsWith("-")) i += /^-[nIPLsd]$/.test(a[i]!.text) ? 2 : 1;
      a = a.slice(i);
    } else break;
  }
  return a;
}

const base = (s: string) => s.slice(s.lastIndexOf("/") + 1);

/** Value of --name VALUE or --name=VALUE. */
function opt(args: WordInfo[], ...names: string[]): WordInfo | undefined {
  for (let i = 0; i < args.length; i++) {
    const t = args[i]!.text;
    for (const n of names) {
      if (t === n) return args[i + 1];
      if (t.startsWith(`${n}=`)) return { ...args[i]!, text: t.slice(n.length + 1) };
    }
  }
  return undefined;
}

function hasFlag(args: WordInfo[], ...names: string[]): boolean {
  return args.some((a) => names.includes(a.text) || names.some((n) => n.startsWith("--") && a.text.startsWith(`${n}=`)));
}

/** Words that are not options (and not option values, for the options listed). */
function positionals(args: WordInfo[], withValue: ReadonlySet<string> = new Set()): WordInfo[] {
  const out: WordInfo[] = [];
  for (let i = 0; i < args.length; i++) {
    const t = args[i]!.text;
    if (t === "--") return [...out, ...args.slice(i + 1)];
    if (t.startsWith("-") && t.length > 1) {
      if (withValue.has(t)) i++;
      continue;
    }
    out.push(args[i]!);
  }
  return out;
}

const AWS_GLOBAL_WITH_VALUE = new Set(["--region", "--profile", "--output", "--endpoint-url", "--query", "--color", "--cli-read-timeout", "--cli-connect-timeout", "--ca-bundle"]);

const none = (name: string, findings: RawFinding[] = []): Classified => ({ name, effect: "none", findings });

export function classify(argvIn: WordInfo[]): Classified {
  const argv = unwrap(argvIn);
  if (argv.length === 0) return none("");
  const cmd = base(argv[0]!.text);
  const args = argv.slice(1);
  const findings = secretArgs(argv);
  const with_ = (c: Omit<Classified, "findings">): Classified => ({ ...c, findings });
  switch (cmd) {
    case "aws":
      return addFindings(aws(args), findings);
    case "kubectl":
    case "oc":
      return addFindings(kubectl(args), findings);
    case "helm":
      return addFindings(helm(args), findings);
    case "docker":
    case "podman":
      return addFindings(docker(args, cmd), findings);
    case "docker-compose":
      return addFindings(compose(args, "docker-compose"), findings);
    case "terraform":
    case "tofu": {
      const sub = positionals(args)[0]?.text;
      if (sub === "destroy" || (sub === "apply" && hasFlag(args, "-destroy"))) {
        const target = opt(args, "-target", "--target");
        return with_({ name: `${cmd} ${sub}${sub === "apply" ? " -destroy" : ""}${target ? ` -target=${target.text}` : ""}`, effect: "remove" });
      }
      // -replace destroys the running resource first unless it is create_before_destroy,
      // which the script cannot show: the old one is gone before anything checked the new.
      const replace = opt(args, "-replace", "--replace");
      if (sub === "apply" && replace) return with_({ name: `${cmd} apply -replace=${replace.text}`, effect: "remove" });
      return none(`${cmd} ${sub ?? ""}`.trim(), findings);
    }
    case "gcloud": {
      const p = positionals(args).map((w) => w.text);
      const s = p.join(" ");
      if (/^compute (instances|instance-groups managed) delete\b/.test(s) || /^compute instance-groups managed delete-instances\b/.test(s)) return with_({ name: `gcloud ${p.slice(0, 4).join(" ")}`, effect: "remove" });
      if (/^compute instances stop\b/.test(s) || /^run services delete\b/.test(s) || /^compute backend-services remove-backend\b/.test(s)) return with_({ name: `gcloud ${p.slice(0, 3).join(" ")}`, effect: "remove" });
      if (/^run services update-traffic\b/.test(s)) return with_({ name: "gcloud run services update-traffic", effect: "cutover" });
      if (/^compute instance-groups managed wait-until\b/.test(s) && hasFlag(args, "--stable")) return with_({ name: "gcloud compute instance-groups managed wait-until --stable", effect: "health" });
      if (/^compute instance-groups managed resize\b/.test(s) && opt(args, "--size")?.text === "0") return with_({ name: "gcloud compute instance-groups managed resize --size 0", effect: "remove" });
      if (/^compute backend-services get-health\b/.test(s)) return with_({ name: "gcloud compute backend-services get-health", effect: "probe" });
      return none("gcloud", findings);
    }
    case "az": {
      const s = positionals(args).map((w) => w.text).join(" ");
      if (/^(vmss|vm) delete\b/.test(s) || /^vmss delete-instances\b/.test(s) || /^(vm|vmss) (deallocate|stop)\b/.test(s)) return with_({ name: `az ${s.split(" ").slice(0, 2).join(" ")}`, effect: "remove" });
      if (/^vmss scale\b/.test(s) && opt(args, "--new-capacity")?.text === "0") return with_({ name: "az vmss scale --new-capacity 0", effect: "remove" });
      if (/^webapp deployment slot swap\b/.test(s)) return with_({ name: "az webapp deployment slot swap", effect: "cutover" });
      return none("az", findings);
    }
    case "nomad": {
      const s = positionals(args).map((w) => w.text).join(" ");
      if (/^job stop\b/.test(s) || /^stop\b/.test(s)) return with_({ name: "nomad job stop", effect: "remove" });
      if (/^job scale\b/.test(s) && /(^| )0$/.test(s)) return with_({ name: "nomad job scale … 0", effect: "remove" });
      // `deployment status -monitor` blocks until the deployment succeeds or fails, and says which.
      if (/^deployment status\b/.test(s) && hasFlag(args, "-monitor", "--monitor")) return with_({ name: "nomad deployment status -monitor", effect: "health" });
      if (/^(job )?status\b/.test(s) || /^deployment status\b/.test(s) || /^alloc status\b/.test(s)) return with_({ name: "nomad status", effect: "probe" });
      return none("nomad", findings);
    }
    case "systemctl":
    case "service": {
      const p = positionals(args).map((w) => w.text);
      const verb = cmd === "systemctl" ? p[0] : p[1];
      const units = cmd === "systemctl" ? p.slice(1) : p.slice(0, 1);
      if (verb === "stop") return with_({ name: `${cmd} stop`, effect: "remove" });
      // Restarting the app's only unit stops the serving process before the new one has
      // proved anything (a stop-first swap); restarting a proxy or an agent is not that.
      if (verb === "restart" && units.length > 0 && units.every((u) => !INFRA_UNITS.test(u))) return with_({ name: `${cmd} restart`, effect: "remove" });
      if (cmd === "systemctl" && verb === "is-active") return with_({ name: "systemctl is-active", effect: "health" });
      return none(cmd, findings);
    }
    case "nc":
    case "ncat":
      return with_({ name: `${cmd} -z`, effect: args.some((a) => /^-[a-zA-Z]*z/.test(a.text)) ? "health" : "none" });
    case "curl":
      return curl(args, findings);
    case "wget":
      return with_({ name: "wget", effect: positionals(args, new Set(["-O", "-o", "--output-document"])).length > 0 ? "health" : "none" });
    case "grep":
    case "egrep":
    case "fgrep":
      return with_({ name: cmd, effect: args.some((a) => /^-[a-zA-Z]*v/.test(a.text) || a.text === "--invert-match") ? "none" : "filter" });
    case "jq":
      return with_({ name: "jq", effect: args.some((a) => /^-[a-zA-Z]*e/.test(a.text) || a.text === "--exit-status") ? "filter" : "none" });
    case "sleep": {
      const s = seconds(args[0]?.text ?? "");
      return with_({ name: "sleep", effect: s !== undefined && s >= 300 ? "soak" : "none" });
    }
    case "read":
      return with_({ name: "read", effect: "soak" });
    case "ssh":
      return ssh(args, findings);
    case "scp":
    case "rsync":
      return with_({ name: cmd, effect: "configure" });
    case "ansible":
    case "ansible-playbook":
    case "salt":
    case "knife":
      return with_({ name: cmd, effect: "configure" });
    case "bash":
    case "sh":
    case "zsh":
    case "dash": {
      const c = opt(args, "-c");
      if (c?.literal) return with_({ name: `${cmd} -c`, effect: "none", inner: { text: c.text, via: `${cmd} -c`, remote: false } });
      return none(cmd, findings);
    }
    default:
      // A project's own helper (`./scripts/wait-for-healthy.sh`, `smoke_test` from a sourced
      // library) is read by its name: its exit status is the verdict it is named for.
      if (!KNOWN_TOOLS.has(cmd) && HEALTH_NAMED.test(cmd)) return with_({ name: cmd, effect: "health" });
      return none(cmd, findings);
  }
}

/** Units whose restart reloads plumbing, not the application being replaced. */
const INFRA_UNITS = /^(nginx|haproxy|caddy|envoy|traefik|apache2|httpd|docker|containerd|sshd?|cron|crond|rsyslog|systemd-[a-z-]+|td-agent|fluent-bit|datadog-agent|node_exporter|amazon-cloudwatch-agent|chronyd?|ntpd?|kubelet|consul|nomad|vault)(\.service)?$/;

const HEALTH_NAMED = /(health|healthy|ready|readiness|wait[-_]?for|wait[-_]until|smoke|probe)/i;
const KNOWN_TOOLS = new Set(["echo", "printf", "sleep", "cat", "tee", "jq", "grep", "sed", "awk", "date", "mkdir", "cp", "mv", "rm", "ln", "chmod", "chown", "touch", "export", "local", "readonly", "declare"]);

function addFindings(c: Classified, extra: RawFinding[]): Classified {
  return extra.length === 0 ? c : { ...c, findings: [...extra, ...c.findings] };
}

function seconds(t: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(t);
  if (!m) return undefined;
  return Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
}

function curl(args: WordInfo[], findings: RawFinding[]): Classified {
  const withValue = new Set(["-o", "-w", "-H", "-X", "-d", "--data", "-u", "--user", "--max-time", "-m", "--retry", "--retry-delay", "--connect-timeout", "--output", "--write-out", "--header", "-A", "-e", "--resolve"]);
  const urls = positionals(args, withValue);
  if (urls.length === 0) return { name: "curl", effect: "none", findings };
  const fail = args.some((a) => a.text === "--fail" || a.text === "--fail-with-body" || /^-[a-zA-Z]*f[a-zA-Z]*$/.test(a.text));
  return { name: fail ? "curl --fail" : "curl", effect: fail ? "health" : "probe", findings };
}

function aws(args: WordInfo[]): Classified {
  const pos = positionals(args, AWS_GLOBAL_WITH_VALUE);
  const service = pos[0]?.text ?? "";
  const op = pos[1]?.text ?? "";
  const name = `aws ${service} ${op}`.trim();
  const findings: RawFinding[] = [];
  const c = (effect: Effect, extra?: Partial<Classified>): Classified => ({ name, effect, findings, ...extra });
  const key = `${service} ${op}`;
  const o = (n: string) => opt(args, n);
  switch (key) {
    case "ec2 terminate-instances":
    case "ec2 stop-instances":
    case "autoscaling terminate-instance-in-auto-scaling-group":
    case "autoscaling delete-auto-scaling-group":
    case "autoscaling detach-instances":
    case "elbv2 deregister-targets":
    case "elb deregister-instances-from-load-balancer":
    case "elbv2 delete-target-group":
    case "ecs delete-service":
    case "cloudformation delete-stack":
      return c("remove");
    case "autoscaling set-desired-capacity":
      return c(o("--desired-capacity")?.text === "0" ? "remove" : "none", { name: o("--desired-capacity")?.text === "0" ? `${name} --desired-capacity 0` : name });
    case "autoscaling update-auto-scaling-group": {
      const lt = o("--launch-template");
      if (lt && /Version=['"]?\$(Latest|Default)/.test(lt.text)) {
        findings.push({ ruleId: "KR024", pos: lt.pos, message: `the group launches "${/\$(Latest|Default)/.exec(lt.text)![0]}" of its launch template, which moves whenever a version is created` });
      }
      const zero = o("--desired-capacity")?.text === "0" || o("--max-size")?.text === "0";
      return c(zero ? "remove" : "none", zero ? { name: `${name} --${o("--desired-capacity")?.text === "0" ? "desired-capacity" : "max-size"} 0` } : {});
    }
    case "ecs update-service":
      return c(o("--desired-count")?.text === "0" ? "remove" : "none", o("--desired-count")?.text === "0" ? { name: `${name} --desired-count 0` } : {});
    case "elbv2 modify-listener":
    case "elbv2 modify-rule":
    case "route53 change-resource-record-sets":
    case "autoscaling attach-load-balancer-target-groups":
    case "autoscaling attach-traffic-sources":
      return c("cutover");
    case "elbv2 wait":
    case "elb wait":
    case "autoscaling wait":
    case "ecs wait":
    case "deploy wait": {
      const what = pos[2]?.text ?? "";
      const ok = /^(target-in-service|instance-in-service|services-stable|deployment-successful)$/.test(what) || service === "autoscaling";
      return { name: `${name} ${what}`.trim(), effect: ok ? "health" : "none", findings };
    }
    case "cloudformation wait": {
      const what = pos[2]?.text ?? "";
      return { name: `${name} ${what}`, effect: /^stack-(create|update|import)-complete$/.test(what) ? "health" : "none", findings };
    }
    case "elbv2 describe-target-health":
    case "elb describe-instance-health":
    case "autoscaling describe-auto-scaling-groups":
    case "autoscaling describe-auto-scaling-instances":
    case "autoscaling describe-instance-refreshes":
    case "ecs describe-services":
    case "deploy get-deployment":
      return c("probe");
    case "autoscaling start-instance-refresh": {
      const p = o("--preferences");
      if (p?.literal) {
        let prefs: unknown;
        try {
          prefs = JSON.parse(p.text);
        } catch {
          prefs = shorthand(p.text);
        }
        if (prefs && typeof prefs === "object") {
          findings.push(...checkRefreshPreferences(fromJS(prefs, p.pos), { where: "--preferences", style: "cli", defaultWarmup: false }));
        }
      } else if (!p) {
        findings.push(...checkRefreshPreferences(undefined, { where: "start-instance-refresh", style: "cli", defaultWarmup: false, at: pos[1]!.pos }));
      }
      return c("none");
    }
    case "ec2 run-instances": {
      const k = o("--key-name");
      if (k) findings.push({ ruleId: "KR041", pos: k.pos, message: `\`aws ec2 run-instances --key-name ${k.text}\` puts an SSH key on the instance` });
      return c("none");
    }
    case "ec2 authorize-security-group-ingress": {
      const port = o("--port")?.text;
      const cidr = o("--cidr")?.text;
      const perms = o("--ip-permissions")?.text ?? "";
      const openCidr = (s: string | undefined) => s === "0.0.0.0/0" || s === "::/0";
      const covers22 = (p: string | undefined) => {
        if (p === undefined) return false;
        const m = /^(\d+)(?:-(\d+))?$/.exec(p);
        return m ? Number(m[1]) <= 22 && 22 <= Number(m[2] ?? m[1]) : p === "all";
      };
      if ((covers22(port) && openCidr(cidr)) || (/FromPort=?"?:?\s*(\d+)/.test(perms) && /(0\.0\.0\.0\/0|::\/0)/.test(perms) && sshInPermissions(perms))) {
        const at = opt(args, "--cidr", "--ip-permissions")!;
        findings.push({ ruleId: "KR040", pos: at.pos, message: "`aws ec2 authorize-security-group-ingress` opens port 22 to the whole internet" });
      }
      return c("none");
    }
    case "ssm send-command": {
      const params = o("--parameters");
      const text = params ? ssmCommands(params.text) : "";
      return c("enter", { inner: text ? { text, via: "aws ssm send-command", remote: true } : undefined });
    }
    case "ssm start-session":
    case "ec2-instance-connect send-ssh-public-key":
    case "ecs execute-command":
      return c("enter");
    default:
      return c("none");
  }
}

function sshInPermissions(perms: string): boolean {
  const from = /FromPort"?\s*[:=]\s*(-?\d+)/.exec(perms);
  const to = /ToPort"?\s*[:=]\s*(-?\d+)/.exec(perms);
  if (!from) return false;
  const lo = Number(from[1]);
  const hi = Number(to?.[1] ?? from[1]);
  return lo === -1 || (lo <= 22 && 22 <= hi);
}

/** "MinHealthyPercentage=90,InstanceWarmup=60" → object (the CLI's shorthand syntax). */
function shorthand(s: string): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const part of s.split(",")) {
    const m = /^\s*([A-Za-z]+)=(.*)$/.exec(part);
    if (!m) return undefined;
    const v = m[2]!.trim();
    out[m[1]!] = /^-?\d+$/.test(v) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
  }
  return out;
}

/** The commands of `--parameters commands=[…]` / `'{"commands":[…]}'`, one per line. */
function ssmCommands(p: string): string {
  try {
    const j = JSON.parse(p) as { commands?: unknown };
    if (Array.isArray(j.commands)) return j.commands.map(String).join("\n");
  } catch {
    /* shorthand */
  }
  const m = /commands=\[?(.*?)\]?$/s.exec(p);
  if (!m) return "";
  return m[1]!
    .split(/",\s*"|','/)
    .map((x) => x.replace(/^["']|["']$/g, ""))
    .join("\n");
}

const K8S_WORKLOADS = /^(deploy|deployment|deployments|rs|replicaset|replicasets|po|pod|pods|sts|statefulset|statefulsets|rollout|rollouts|ds|daemonset|daemonsets|svc|service|services)(\.[a-z.]+)?(\/.*)?$/;

function kubectl(args: WordInfo[]): Classified {
  const withValue = new Set(["-n", "--namespace", "--context", "-o", "--output", "-l", "--selector", "-f", "--filename", "-c", "--container", "--timeout", "--for", "-p", "--patch", "--type", "--replicas", "--kubeconfig"]);
  const p = positionals(args, withValue);
  const verb = p[0]?.text ?? "";
  const name = `kubectl ${verb}`;
  const findings: RawFinding[] = [];
  switch (verb) {
    case "delete": {
      const kind = p[1]?.text ?? "";
      const file = opt(args, "-f", "--filename");
      if (K8S_WORKLOADS.test(kind) || file) return { name: `kubectl delete ${file ? "-f" : kind.split("/")[0]}`, effect: "remove", findings };
      return { name, effect: "none", findings };
    }
    case "scale":
      return { name: "kubectl scale --replicas=0", effect: opt(args, "--replicas")?.text === "0" ? "remove" : "none", findings };
    case "drain":
      return { name, effect: "remove", findings };
    case "rollout": {
      const sub = p[1]?.text;
      if (sub === "status") return { name: "kubectl rollout status", effect: opt(args, "--watch", "-w")?.text === "false" ? "probe" : "health", findings };
      return { name: `kubectl rollout ${sub ?? ""}`.trim(), effect: "none", findings };
    }
    case "wait": {
      const f = opt(args, "--for")?.text ?? "";
      return { name: "kubectl wait", effect: /condition=(available|ready|progressing)/i.test(f) ? "health" : "none", findings };
    }
    case "argo": {
      const sub = p[2]?.text;
      if (p[1]?.text === "rollouts" && sub === "status") return { name: "kubectl argo rollouts status", effect: "health", findings };
      if (p[1]?.text === "rollouts" && sub === "promote") return { name: "kubectl argo rollouts promote", effect: "cutover", findings };
      return { name, effect: "none", findings };
    }
    case "patch": {
      const kind = p[1]?.text ?? "";
      const patch = opt(args, "-p", "--patch")?.text ?? "";
      if (/^(svc|service|services)(\/|$)/.test(kind) && /selector/.test(patch)) return { name: "kubectl patch service (selector)", effect: "cutover", findings };
      return { name, effect: "none", findings };
    }
    case "get":
      return { name, effect: "probe", findings };
    case "exec": {
      const dd = args.findIndex((a) => a.text === "--");
      const text = dd >= 0 ? joinArgv(args.slice(dd + 1)) : "";
      return { name, effect: "enter", findings, inner: text ? { text, via: "kubectl exec", remote: true } : undefined };
    }
    case "cp":
    case "debug":
    case "attach":
      return { name, effect: "enter", findings };
    case "set": {
      if (p[1]?.text === "image") for (const w of p.slice(3)) {
        const eq = w.text.indexOf("=");
        if (eq > 0) findings.push(...checkImageRef(w.text.slice(eq + 1), w.pos));
      }
      return { name: "kubectl set image", effect: "none", findings };
    }
    default:
      return { name, effect: "none", findings };
  }
}

function helm(args: WordInfo[]): Classified {
  const p = positionals(args, new Set(["-n", "--namespace", "-f", "--values", "--set", "--version", "--timeout", "--kube-context"]));
  const verb = p[0]?.text ?? "";
  if (verb === "uninstall" || verb === "delete") return { name: `helm ${verb}`, effect: "remove", findings: [] };
  if ((verb === "upgrade" || verb === "install") && hasFlag(args, "--wait", "--atomic")) return { name: `helm ${verb} --wait`, effect: "health", findings: [] };
  return { name: `helm ${verb}`.trim(), effect: "none", findings: [] };
}

const DOCKER_GLOBAL_OPTS = new Set(["-H", "--host", "--context", "--config", "-l", "--log-level"]);

/** Options of docker run/create/service that take a value (so the value is not read as the image). */
const DOCKER_RUN_OPTS = new Set(["-v", "--volume", "-e", "--env", "-p", "--publish", "--name", "--network", "--restart", "-u", "--user", "-w", "--workdir", "--env-file", "--mount", "--label", "-l", "--health-cmd", "--health-interval", "--log-driver", "--log-opt", "--entrypoint", "-m", "--memory", "--cpus", "--hostname", "-h", "--add-host", "--health-retries", "--health-timeout", "--health-start-period", "--replicas", "--update-order", "--update-failure-action", "--update-parallelism", "--update-delay", "--rollback-parallelism", "--mode", "--constraint", "--secret", "--config", "--publish-add", "--image",
  // value-taking options of run/create, so that their values are not read as the image
  "--tmpfs", "--gpus", "--ipc", "--pid", "--uts", "--userns", "--cgroupns", "--shm-size", "--ulimit", "--device", "--cap-add", "--cap-drop",
  "--security-opt", "--network-alias", "--net", "--net-alias", "--dns", "--dns-search", "--dns-option", "--platform", "--pull", "--stop-signal",
  "--stop-timeout", "--cidfile", "--label-file", "--expose", "--link", "--volumes-from", "--runtime", "--sysctl", "--storage-opt", "--memory-swap",
  "--memory-reservation", "--cpu-shares", "-c", "--cpuset-cpus", "--cpuset-mems", "--cpu-period", "--cpu-quota", "--isolation", "--mac-address", "--ip", "--ip6",
  "-a", "--attach", "--blkio-weight", "--group-add", "--oom-score-adj", "--pids-limit", "--kernel-memory", "--health-start-interval", "--annotation",
  "--device-cgroup-rule", "--env-file", "--log-opt", "--domainname", "--volume-driver", "--detach-keys", "--mount-add", "--env-add", "--label-add"]);

function docker(args: WordInfo[], cmd: string): Classified {
  let p = positionals(args, DOCKER_GLOBAL_OPTS);
  // `docker container stop` is `docker stop`; the management form is common in newer scripts.
  if (p[0]?.text === "container" && p[1]) p = p.slice(1);
  const verb = p[0]?.text ?? "";
  const findings: RawFinding[] = [];
  const rest = args.slice(args.indexOf(p[0]!) + 1);

  switch (verb) {
    case "rm":
    case "stop":
    case "restart":
    case "kill": {
      const removes = positionals(rest, new Set(["-t", "--time", "-s", "--signal"])).map((w) => w.text);
      return { name: `${cmd} ${verb}`, effect: "remove", findings, container: { removes } };
    }
    case "exec": {
      const inner = positionals(rest, new Set(["-e", "--env", "-u", "--user", "-w", "--workdir", "--env-file"]));
      const text = joinArgv(inner.slice(1));
      return { name: `${cmd} exec`, effect: "enter", findings, inner: text ? { text, via: `${cmd} exec`, remote: true } : undefined };
    }
    case "run":
    case "create": {
      const pp = positionals(rest, DOCKER_RUN_OPTS);
      if (pp[0]) findings.push(...checkImageRef(pp[0].text, pp[0].pos));
      for (let i = 0; i < rest.length; i++) {
        const t = rest[i]!.text;
        const v = t === "-v" || t === "--volume" ? rest[i + 1] : t.startsWith("--volume=") || t.startsWith("-v=") ? { ...rest[i]!, text: t.slice(t.indexOf("=") + 1) } : undefined;
        if (v) {
          const src = v.text.split(":")[0]!;
          if (v.text.includes(":") && (src.startsWith("/") || src.startsWith("./") || src.startsWith("~")) && !/^\/(var\/run\/docker\.sock|etc\/localtime|proc|sys|tmp|run|var\/run|dev)(\/|$)/.test(src)) {
            findings.push({ ruleId: "KR051", pos: v.pos, message: `\`${cmd} run -v ${v.text}\` keeps data in ${src} on this host's own disk` });
          }
        }
      }
      const runName = opt(rest, "--name")?.text;
      return { name: `${cmd} ${verb}`, effect: "none", findings, container: runName ? { run: runName } : undefined };
    }
    case "pull": {
      const pp = positionals(rest);
      if (pp[0]) findings.push(...checkImageRef(pp[0].text, pp[0].pos));
      return { name: `${cmd} pull`, effect: "none", findings };
    }
    case "inspect":
      return { name: `${cmd} inspect`, effect: "probe", findings };
    case "ps":
      return { name: `${cmd} ps`, effect: "probe", findings };
    case "service": {
      const sub = p[1]?.text ?? "";
      const sp = positionals(rest.slice(1), DOCKER_RUN_OPTS);
      if (sub === "rm" || sub === "remove") return { name: `${cmd} service rm`, effect: "remove", findings };
      if (sub === "scale" && sp.some((w) => /=0$/.test(w.text))) return { name: `${cmd} service scale …=0`, effect: "remove", findings };
      if (sub === "create" && sp[0]) findings.push(...checkImageRef(sp[0].text, sp[0].pos));
      if (sub === "update") {
        const img = opt(rest, "--image");
        if (img) findings.push(...checkImageRef(img.text, img.pos));
      }
      if (sub === "ps" || sub === "inspect") return { name: `${cmd} service ${sub}`, effect: "probe", findings };
      return { name: `${cmd} service ${sub}`, effect: "none", findings };
    }
    case "stack":
      return { name: `${cmd} stack ${p[1]?.text ?? ""}`, effect: p[1]?.text === "rm" ? "remove" : "none", findings };
    case "compose":
      return compose(rest, `${cmd} compose`);
    case "login": {
      return { name: `${cmd} login`, effect: "none", findings };
    }
    default:
      return { name: `${cmd} ${verb}`.trim(), effect: "none", findings };
  }
}

function compose(args: WordInfo[], name: string): Classified {
  const p = positionals(args, new Set(["-f", "--file", "-p", "--project-name", "--profile", "--env-file"]));
  const verb = p[0]?.text ?? "";
  if (verb === "down" || verb === "rm" || verb === "stop" || verb === "kill") return { name: `${name} ${verb}`, effect: "remove", findings: [] };
  if (verb === "up" && hasFlag(args, "--wait")) return { name: `${name} up --wait`, effect: "health", findings: [] };
  if (verb === "exec") return { name: `${name} exec`, effect: "enter", findings: [] };
  return { name: `${name} ${verb}`.trim(), effect: "none", findings: [] };
}

const SSH_WITH_VALUE = new Set(["-i", "-p", "-o", "-l", "-F", "-J", "-L", "-R", "-D", "-E", "-b", "-c", "-m", "-O", "-S", "-w", "-W", "-Q", "-B", "-e", "-I", "-P"]);

function ssh(args: WordInfo[], findings: RawFinding[]): Classified {
  // ssh's own options end at the host: what follows is the remote command, options and all
  // (`ssh h curl -fsS …` must keep `-fsS`).
  let i = 0;
  while (i < args.length && args[i]!.text.startsWith("-") && args[i]!.text !== "--") i += SSH_WITH_VALUE.has(args[i]!.text) ? 2 : 1;
  if (args[i]?.text === "--") i++;
  const remote = joinArgv(args.slice(i + 1));
  return { name: "ssh", effect: "enter", findings, inner: remote ? { text: remote, via: "ssh", remote: true } : undefined };
}

/** argv → one command line for the remote shell (ssh joins its arguments with spaces, too). */
function joinArgv(words: WordInfo[]): string {
  return words.map((w) => w.text).join(" ");
}

/** --password literal, -p literal (docker login), NAME_PASSWORD=literal passed through env. */
function secretArgs(argv: WordInfo[]): RawFinding[] {
  const out: RawFinding[] = [];
  for (let i = 1; i < argv.length; i++) {
    const t = argv[i]!.text;
    const m = /^--?([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$/.exec(t);
    if (!m) continue;
    const optName = m[1]!;
    const isLoginP = optName === "p" && (base(argv[0]!.text) === "docker" || base(argv[0]!.text) === "podman") && argv.some((a) => a.text === "login");
    if (!isSecretName(optName) && !isLoginP) continue;
    const value = m[2] !== undefined ? { ...argv[i]!, text: m[2] } : argv[i + 1];
    if (value && value.literal && looksLikeLiteralSecret(value.text)) {
      out.push({ ruleId: "KR062", pos: value.pos, message: `\`${t.split("=")[0]}\` is given a literal secret on the command line (and in shell history and process listings)` });
    }
  }
  return out;
}
