// The rule catalog: one flat list, each rule naming the pattern of immutable
// infrastructure it protects (bake → deploy → replace; state outside; no SSH; secrets
// outside the image). Checkers refer to rules by id; the catalog is the one place that
// gives them a severity, a title, a rationale and a default fix.

import type { FileKind, RuleMeta } from "./types.js";

const ALL: readonly FileKind[] = ["shell", "packer", "terraform", "cloudformation", "kubernetes", "compose", "kiln", "ci", "dockerfile", "ansible", "makefile"];
const IAC: readonly FileKind[] = ["terraform", "cloudformation"];

export const RULES: readonly RuleMeta[] = [
  // --- the deploy path --------------------------------------------------------------
  {
    id: "KR001",
    severity: "error",
    title: "old capacity removed before the new capacity's health is confirmed",
    pattern: "replace: launch, health-check, then terminate",
    rationale:
      "Replacement is only safe if the new instances are proven healthy before the old ones go. Terminating, deleting, scaling to zero or deregistering the old fleet on a path where no health check is guaranteed to have passed is the classic outage: if the new fleet is broken, nothing serves.",
    fix: "confirm the new fleet's health first and stop the script when it fails, e.g. `aws elbv2 wait target-in-service --target-group-arn \"$TG\" --targets Id=\"$ID\" || exit 1` (or `kubectl rollout status … || exit 1`), then remove the old capacity",
    kinds: ["shell", "ci", "makefile"],
  },
  {
    id: "KR002",
    severity: "error",
    title: "traffic switched to the new fleet before its health is confirmed",
    pattern: "blue-green: shift traffic only to a healthy green fleet",
    rationale:
      "Blue-green is safe because the green fleet is verified before the load balancer points at it. Switching the listener, DNS record or Service selector before a health check has passed sends every user to an unverified fleet.",
    fix: "wait for the green targets to be healthy and exit on failure before the switch, e.g. `aws elbv2 wait target-in-service --target-group-arn \"$GREEN_TG\" || exit 1`",
    kinds: ["shell", "ci", "makefile"],
  },
  {
    id: "KR003",
    severity: "warning",
    title: "health check whose failure is ignored",
    pattern: "replace: health-check before proceeding",
    rationale:
      "A health check protects nothing unless its failure stops the rollout. Without `set -e`, an ERR trap, `|| exit 1` or an `if` that exits, a failing `aws elbv2 wait`, `curl --fail` or `kubectl rollout status` is printed and forgotten.",
    fix: "append `|| exit 1` (or `|| { rollback; exit 1; }`) to the health check, or put `set -euo pipefail` at the top of the script",
    kinds: ["shell", "ci", "makefile"],
  },
  // --- replacement settings ---------------------------------------------------------
  {
    id: "KR010",
    severity: "error",
    title: "minimum healthy capacity too low during replacement",
    pattern: "rolling replacement: a few at a time",
    rationale:
      "Rolling replacement keeps most of the fleet serving while a few instances are swapped. A minimum healthy percentage below 50 (0 means all at once) lets the rollout take most or all of the fleet out of service together, so a bad image is an outage rather than a blip.",
    fix: "keep at least 90% healthy (MinHealthyPercentage: 90, minHealthyPercent: 90) and let a maximum above 100% add capacity first",
    kinds: ["shell", "cloudformation", "terraform", "kiln"],
  },
  {
    id: "KR011",
    severity: "warning",
    title: "replacement terminates before it launches (no surge capacity)",
    pattern: "rolling replacement: launch before terminate",
    rationale:
      "With MinHealthyPercentage 100 and no MaxHealthyPercentage an instance refresh still terminates first and goes one instance at a time; with a maximum of 100% a rollout can only replace by going below full capacity, and with a minimum of 100% as well it can never make progress.",
    fix: "allow surge capacity: MaxHealthyPercentage 200 (or maxHealthyPercent 200 in kiln.yaml) with MinHealthyPercentage 100, so new instances launch and pass health checks before old ones terminate",
    kinds: ["shell", "cloudformation", "terraform", "kiln"],
  },
  {
    id: "KR012",
    severity: "error",
    title: "surge percentage rounds down to zero instances",
    pattern: "rolling replacement: launch before terminate",
    rationale:
      "Surge capacity is a percentage of the desired count, rounded down: 150% of a single instance is 1.5, which rounds to 1, so no extra instance is ever launched and the only instance is terminated first (the femiwiki#478 trap).",
    fix: "use a maximum of 200% for small fleets (any value where desired × (max − 100) / 100 is at least 1)",
    kinds: ["cloudformation", "terraform", "kiln"],
  },
  {
    id: "KR013",
    severity: "warning",
    title: "no warm-up before a new instance counts as healthy",
    pattern: "rolling replacement: health-check new instances",
    rationale:
      "A new instance that answers its first health check is not yet warm (caches, JIT, connection pools). Without a warm-up the rollout moves on and terminates old capacity while the new instances are still slow, or before the load balancer has evaluated them.",
    fix: "set InstanceWarmup (or DefaultInstanceWarmup / HealthCheckGracePeriod) to the time your app needs, e.g. 120 seconds; in kiln.yaml set strategy.rolling.instanceWarmup",
    kinds: ["shell", "cloudformation", "terraform", "kiln"],
  },
  {
    id: "KR014",
    severity: "warning",
    title: "automatic rollback is off",
    pattern: "rollback: point back at the previous image",
    rationale:
      "The payoff of immutable releases is that rollback is trivial: re-point at the previous image. A rollout that fails without rolling back leaves a half-replaced fleet running two images until someone notices.",
    fix: "turn rollback on: AutoRollback: true in the instance refresh preferences, autoRollback: true in kiln.yaml, DeploymentCircuitBreaker Rollback: true for ECS, failure_action: rollback for Swarm",
    kinds: ["shell", "cloudformation", "terraform", "kiln"],
  },
  {
    id: "KR015",
    severity: "error",
    title: "Swarm update stops old tasks first and pauses on failure",
    pattern: "rolling replacement: launch before terminate, roll back on failure",
    rationale:
      "With order: stop-first a Swarm update stops the old task before the new one starts; with failure_action: pause (the default) a failing new task leaves the service paused with the old task already gone. Together (also the defaults when update_config is absent) a bad image takes replicas down and keeps them down.",
    fix: "set `update_config: { order: start-first, failure_action: rollback, monitor: 30s }` and a `rollback_config`",
    kinds: ["compose"],
  },
  {
    id: "KR016",
    severity: "error",
    title: "every replica replaced at once",
    pattern: "rolling replacement: a few at a time",
    rationale:
      "maxUnavailable equal to the replica count (or 100%), the Recreate strategy, or a Swarm parallelism of 0 stops every old replica before any new one is ready: every deploy is an outage, and a bad image is a total one.",
    fix: "use RollingUpdate with maxUnavailable: 0 and maxSurge: 1 (or 25%); for Swarm set parallelism to 1 with order: start-first",
    kinds: ["kubernetes", "compose"],
  },
  {
    id: "KR017",
    severity: "warning",
    title: "no readiness check gates the rollout",
    pattern: "rolling replacement: health-check new instances",
    rationale:
      "A rolling update counts a replica as available when its readiness check passes. Without a readinessProbe (Kubernetes) or healthcheck (Swarm), a replica is 'ready' as soon as its process starts, so the old replicas are removed before the new ones can serve.",
    fix: "add a readinessProbe (httpGet on the health endpoint) to each container, or a `healthcheck:` to the Swarm service",
    kinds: ["kubernetes", "compose"],
  },
  {
    id: "KR018",
    severity: "warning",
    title: "no connection draining before an instance is terminated",
    pattern: "replace: drain, then terminate",
    rationale:
      "Replacing an instance must not drop the requests it is serving: it should stop receiving new requests and finish in-flight ones first. A deregistration delay, termination grace period, stop grace period or drainTimeout of 0 cuts them off.",
    fix: "give in-flight requests time to finish: deregistration_delay 30+ seconds, terminationGracePeriodSeconds 30, stop_grace_period 30s, drainTimeout 30s",
    kinds: ["terraform", "cloudformation", "kubernetes", "compose", "kiln"],
  },
  {
    id: "KR019",
    severity: "warning",
    title: "previous fleet destroyed at cutover (no rollback window)",
    pattern: "blue-green: keep blue for instant rollback",
    rationale:
      "Blue-green's instant rollback is re-pointing traffic at the blue fleet. Destroying blue at the moment of cutover throws that away: a problem found a minute later needs a full new rollout.",
    fix: "keep the previous fleet for a window before removing it: keepPreviousFor: 10m in kiln.yaml, scaleDownDelaySeconds 600 for Argo Rollouts, TerminationWaitTimeInMinutes for CodeDeploy, or a soak (`sleep 600` / an approval) between the switch and the teardown",
    kinds: ["shell", "kubernetes", "cloudformation", "kiln", "ci", "makefile"],
  },
  {
    id: "KR020",
    severity: "warning",
    title: "rolling update not gated on instance health signals",
    pattern: "rolling replacement: health-check new instances",
    rationale:
      "A CloudFormation AutoScalingRollingUpdate without WaitOnResourceSignals moves on as soon as each batch of instances is launched, healthy or not, and terminates the next batch of old ones.",
    fix: "set WaitOnResourceSignals: true with a PauseTime, and have the instance run cfn-signal after its health check passes",
    kinds: ["cloudformation"],
  },
  {
    id: "KR021",
    severity: "warning",
    title: "Auto Scaling group ignores load balancer health",
    pattern: "replace unhealthy instances automatically",
    rationale:
      "With HealthCheckType EC2 the group only replaces instances whose VM fails; an instance whose app is down but whose VM runs stays in service forever, and a refresh counts it healthy.",
    fix: "set HealthCheckType: ELB (health_check_type = \"ELB\") with a HealthCheckGracePeriod",
    kinds: IAC,
  },
  {
    id: "KR022",
    severity: "warning",
    title: "a new image does not replace the running fleet",
    pattern: "replace to change anything",
    rationale:
      "When the launch template changes but the Auto Scaling group has no update policy or instance refresh, existing instances keep running the old image and only new ones get the new image: a mixed fleet that drifts, the thing immutable infrastructure removes.",
    fix: "add an UpdatePolicy (AutoScalingRollingUpdate) in CloudFormation or an `instance_refresh` block in Terraform so every instance is replaced when the image changes",
    kinds: IAC,
  },
  {
    id: "KR023",
    severity: "error",
    title: "replacement destroys the old resource before creating the new one",
    pattern: "replace: launch before terminate",
    rationale:
      "Launch configurations are immutable and an Auto Scaling group whose name derives from its launch configuration is replaced on every change. Terraform's default is destroy-then-create, so the fleet is deleted before its replacement exists.",
    fix: "add `lifecycle { create_before_destroy = true }` to the resource",
    kinds: ["terraform"],
  },
  {
    id: "KR024",
    severity: "warning",
    title: "launch template referenced by a moving version",
    pattern: "deploy the exact image",
    rationale:
      "`$Latest` and `$Default` move whenever someone creates a launch template version, so what the group launches is not pinned to a release, and EC2 Auto Scaling cannot roll back an instance refresh that uses them.",
    fix: "reference a numbered version: version = aws_launch_template.app.latest_version (Terraform) or Version: !GetAtt LaunchTemplate.LatestVersionNumber (CloudFormation)",
    kinds: ["shell", "cloudformation", "terraform"],
  },
  // --- mutability -------------------------------------------------------------------
  {
    id: "KR030",
    severity: "error",
    title: "image referenced by `latest` or no tag",
    pattern: "deploy instances from that exact image",
    rationale:
      "`latest` (or no tag, which means latest) moves: two replicas can run two images, a restart can change the code, and rolling back to 'the previous image' means nothing.",
    fix: "reference the image by digest (`repo/app@sha256:…`), or at least by an immutable version tag (`repo/app:1.4.2`)",
    kinds: ["shell", "cloudformation", "terraform", "kubernetes", "compose", "ci", "dockerfile", "makefile"],
  },
  {
    id: "KR031",
    severity: "warning",
    title: "image referenced by tag without a digest",
    pattern: "deploy instances from that exact image",
    rationale:
      "A tag is a pointer that can be re-pushed; only a digest names the exact bytes that were tested. Pinning by digest makes every replica, every restart and every rollback run the same image.",
    fix: "append the digest: `repo/app:1.4.2@sha256:<digest>` (kiln bake prints it)",
    kinds: ["shell", "cloudformation", "terraform", "kubernetes", "compose", "ci", "makefile"],
  },
  {
    id: "KR032",
    severity: "error",
    title: "AMI lookup takes the most recent image from any owner",
    pattern: "bake a versioned golden image",
    rationale:
      "`most_recent = true` without an owner filter picks whatever image with a matching name was published last, by anyone: the base of your golden image changes under you and can be an attacker's.",
    fix: "pin the owner (`owners = [\"099720109477\"]` for Canonical, or your account id) and, for deploys, the exact AMI id produced by the bake",
    kinds: ["packer", "terraform"],
  },
  {
    id: "KR033",
    severity: "error",
    title: "instances configured after deploy",
    pattern: "bake, deploy, replace: the image is the configuration",
    rationale:
      "Installing packages, piping scripts from the network or running configuration management on running instances (user data, ssh, exec, SSM) makes every instance a product of the moment it booted: what runs is no longer what was baked and tested.",
    fix: "move the installation into the image bake (a Packer provisioner or the kiln.yaml image section) and deploy the new image; user data should only pass declared settings",
    kinds: ["shell", "cloudformation", "terraform", "kubernetes", "compose", "ci", "ansible"],
  },
  {
    id: "KR034",
    severity: "warning",
    title: "bake upgrades every package to whatever is current",
    pattern: "bake a versioned golden image",
    rationale:
      "`apt-get upgrade`, `dist-upgrade` or `yum update` in a bake installs whatever the mirror serves today: two bakes of the same template give different images. Patching is a rebuild from a newer, pinned base image.",
    fix: "start from a patched, pinned base image and install explicit versions instead of upgrading in place",
    kinds: ["shell", "packer", "dockerfile"],
  },
  {
    id: "KR035",
    severity: "warning",
    title: "package installed without a version in a bake",
    pattern: "bake a versioned golden image",
    rationale:
      "An unpinned install resolves at bake time, so rebuilding the same template later gives a different image and 'what we tested' is not what runs.",
    fix: "pin each package: `apt-get install -y nginx=1.24.0-1ubuntu1`, `pip install flask==3.0.3`, `npm install -g pm2@5.4.2`",
    kinds: ["shell", "packer", "dockerfile"],
  },
  {
    id: "KR036",
    severity: "warning",
    title: "bake pipes a remote script into a shell",
    pattern: "bake a versioned golden image",
    rationale:
      "`curl … | sh` runs whatever the URL serves at bake time, unpinned and unverified: the image is not reproducible and its contents are not reviewed.",
    fix: "download a pinned version, verify its checksum (`sha256sum -c`), then run it; or install from a pinned package",
    kinds: ["shell", "packer", "dockerfile"],
  },
  {
    id: "KR037",
    severity: "warning",
    title: "image name carries no version",
    pattern: "every image is tagged with a version",
    rationale:
      "A golden image is a versioned artifact: its name must say which release it is, so that a deploy, a rollback and an incident report can name it. A timestamp alone does not say what is inside.",
    fix: "put the version in the name, e.g. `ami_name = \"app-${var.app_version}-${local.timestamp}\"`",
    kinds: ["packer"],
  },
  // --- access -----------------------------------------------------------------------
  {
    id: "KR040",
    severity: "error",
    title: "SSH open to the world",
    pattern: "no SSH in production",
    rationale:
      "Immutable instances are never modified, so nobody needs to log in. Port 22 open to 0.0.0.0/0 or ::/0 is attack surface with no purpose, and an invitation to patch by hand.",
    fix: "remove the port 22 ingress rule; for break-glass debugging use SSM Session Manager from a restricted role, then replace the instance",
    kinds: ["shell", "cloudformation", "terraform"],
  },
  {
    id: "KR041",
    severity: "warning",
    title: "SSH key pair attached to fleet instances",
    pattern: "no SSH in production",
    rationale:
      "A key pair on a launch template or instance exists only so that someone can log in and change the instance, which is exactly what immutable infrastructure forbids.",
    fix: "remove KeyName / key_name / --key-name; replace instances instead of logging in",
    kinds: ["shell", "cloudformation", "terraform"],
  },
  {
    id: "KR042",
    severity: "warning",
    title: "sshd left enabled in the image",
    pattern: "no SSH in production",
    rationale:
      "Packer needs SSH to bake, but the image it produces should not keep serving it: if nobody modifies servers nobody needs shell access, and an enabled sshd is attack surface.",
    fix: "add a last provisioner step `sudo systemctl disable ssh && sudo systemctl mask ssh` (sshd on RHEL-family), or remove the openssh-server package",
    kinds: ["packer", "dockerfile"],
  },
  {
    id: "KR043",
    severity: "warning",
    title: "deploy path enters running instances",
    pattern: "instances are cattle: never entered",
    rationale:
      "`docker exec`, `kubectl exec`, `ssh host 'cmd'` or SSM commands in a deploy change running instances in place: the change lives in no image, and the next replacement silently undoes it.",
    fix: "run one-off work (migrations, cache warm-up) as its own task or Job from the same image, and put everything else in the image",
    kinds: ["shell", "ci", "makefile"],
  },
  // --- state ------------------------------------------------------------------------
  {
    id: "KR050",
    severity: "error",
    title: "data on the node's disk (hostPath)",
    pattern: "state is externalized",
    rationale:
      "A hostPath volume stores data on whichever node the pod lands on: replacing the pod can move it away from its data, and replacing the node deletes it.",
    fix: "use a PersistentVolumeClaim backed by network storage, or an external service (database, object store)",
    kinds: ["kubernetes"],
  },
  {
    id: "KR051",
    severity: "warning",
    title: "data in a host-local volume",
    pattern: "state is externalized",
    rationale:
      "A bind mount of a host path, or a named volume with the default local driver, keeps data on the one host the container ran on: when the service is rescheduled or the host replaced, the data stays behind or is lost.",
    fix: "use a volume driver backed by network storage (NFS, EFS, a cloud volume plugin) or move the data to a managed service",
    kinds: ["shell", "compose"],
  },
  {
    id: "KR052",
    severity: "warning",
    title: "data volume tied to an instance's lifetime",
    pattern: "state is externalized",
    rationale:
      "An extra EBS volume in a launch template belongs to one instance: with DeleteOnTermination it is deleted at every replacement, without it, it is orphaned. Either way data written there does not survive replacement.",
    fix: "keep only the root volume on fleet instances; put data on EFS, S3 or a managed database",
    kinds: IAC,
  },
  {
    id: "KR053",
    severity: "warning",
    title: "app writes under /var/lib without a declared volume",
    pattern: "state is externalized",
    rationale:
      "A path like /var/lib/<app> holds data the app means to keep; inside an immutable instance it lives on the instance's own disk and disappears at the next replacement.",
    fix: "declare an external volume mounted at that path (kiln.yaml `volumes:`, a PersistentVolumeClaim, a named volume) or store the data in an external service",
    kinds: ["kubernetes", "compose", "kiln"],
  },
  // --- secrets ----------------------------------------------------------------------
  {
    id: "KR060",
    severity: "error",
    title: "AWS access key in the file",
    pattern: "secrets outside the image",
    rationale:
      "An access key written into a template or script ends up in version control and in every image or stack built from it, and rotating it means rebuilding everything.",
    fix: "delete the key, rotate it in IAM now, and use an instance profile / IAM role (or a secrets manager reference) instead",
    kinds: ALL,
  },
  {
    id: "KR061",
    severity: "error",
    title: "private key in the file",
    pattern: "secrets outside the image",
    rationale: "A private key committed to a template, script or manifest is readable by anyone who can read the repository or the image built from it.",
    fix: "remove the key, revoke it, and fetch keys at runtime from a secrets manager (or mount a Kubernetes Secret)",
    kinds: ALL,
  },
  {
    id: "KR062",
    severity: "error",
    title: "password or token written as a literal",
    pattern: "secrets outside the image",
    rationale:
      "A literal password or token in a template, script or manifest is baked into every image and stack built from it, visible in version control, and cannot be rotated without a rebuild.",
    fix: "reference a secret instead: `{{resolve:secretsmanager:…}}` / NoEcho parameters (CloudFormation), a `sensitive` variable fed from a secret store (Terraform), `secretKeyRef` (Kubernetes), `secrets:` (Compose), an environment variable at runtime (scripts)",
    kinds: ALL,
  },
  {
    id: "KR063",
    severity: "error",
    title: "secret file copied into the image",
    pattern: "secrets outside the image",
    rationale: "A key, certificate key or .env file copied into a golden image is shipped to every instance and every registry the image reaches.",
    fix: "do not bake secrets: fetch them at boot from a secrets manager using the instance role",
    kinds: ["packer", "dockerfile"],
  },
  // --- CI pipelines, Dockerfiles, Ansible ---------------------------------------------
  {
    id: "KR070",
    severity: "error",
    title: "secret printed to the CI log",
    pattern: "secrets outside the image",
    rationale:
      "CI logs are read by everyone with access to the project and kept for months; masking only catches a secret printed exactly as stored (not base64, not part of a URL, not after a `set -x`). A step that echoes a secret publishes it.",
    fix: "do not print it: pass it on stdin (`printf '%s' \"$TOKEN\" | docker login --password-stdin …`) or through the environment to the tool that needs it, and drop `set -x` around it",
    kinds: ["ci"],
  },
  {
    id: "KR071",
    severity: "warning",
    title: "image runs as root",
    pattern: "small attack surface: the instance runs only what it needs",
    rationale:
      "A process that runs as root inside the container is root on the host's kernel interfaces: any escape or mounted path becomes a host compromise. `USER root` as the last user of the final stage ships that to every instance.",
    fix: "create an unprivileged user in the image (`RUN useradd --system --uid 10001 app`) and end the final stage with `USER 10001`; do root-only setup in RUN steps before it",
    kinds: ["dockerfile"],
  },
  {
    id: "KR072",
    severity: "error",
    title: "rolling play without a health check",
    pattern: "rolling replacement: health-check each batch",
    rationale:
      "`serial` makes Ansible change a few hosts at a time, but without a health check after each batch (`uri` with `until`/`retries`, `wait_for`) and `max_fail_percentage: 0`, a broken release rolls through every batch just as fast as an all-at-once run.",
    fix: "after the change in each batch, wait for the host to serve (`ansible.builtin.uri: url=http://{{ inventory_hostname }}:8080/health status_code=200` with `retries`/`until`) and set `max_fail_percentage: 0` so a failing batch stops the play",
    kinds: ["ansible"],
  },
  // --- suppressions -----------------------------------------------------------------
  {
    id: "KR090",
    severity: "warning",
    title: "suppression without a reason (or for an unknown rule)",
    pattern: "reviewable exceptions",
    rationale: "An exception to a safety rule must say why, so the next reader can judge it. A `kiln-ignore` without a reason does not suppress anything.",
    fix: "write the reason after a colon: `# kiln-ignore KR012: single-instance staging fleet, downtime accepted`",
    kinds: ALL,
  },
  {
    id: "KR091",
    severity: "info",
    title: "suppression that matches no finding",
    pattern: "reviewable exceptions",
    rationale: "A stale suppression hides nothing today but will silently hide a real finding later.",
    fix: "delete the kiln-ignore comment",
    kinds: ALL,
  },
];

const byId = new Map(RULES.map((r) => [r.id, r]));

export function ruleById(id: string): RuleMeta {
  const r = byId.get(id);
  if (!r) throw new Error(`unknown rule ${id}`);
  return r;
}

export function isRuleId(id: string): boolean {
  return byId.has(id);
}
