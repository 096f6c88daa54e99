// kiln.yaml → a Packer HCL2 template that bakes the same service as a VM image
// (amazon-ebs) and, from the same provisioners, a container image (docker).
//
// Written for the subset Debian's Packer 1.6.6 reads: variables, locals,
// source, build, provisioner, post-processor. No `required_plugins`, `data` or
// singular `local` blocks: the plugin requirements current Packer needs live in
// a separate plugins.pkr.hcl.example (rename it and run `packer init .`).
//
// The template is deterministic: its names and tags come from the image's
// created time (SOURCE_DATE_EPOCH or the commit time at bake), never from the
// clock of the machine that runs Packer.

import { posix } from "node:path";
import { LABEL } from "../derive/index.js";
import { isNodeBase, type FileEntry, type Spec } from "../config/index.js";
import { headerLines, seconds, userIds } from "./derive.js";
import { attr, blank, block, comment, obj, raw, renderHcl, template, type HclItem } from "./hcl.js";
import { PACKAGES_LABEL, parsePackagesLabel } from "./packages.js";
import type { GeneratedFile, ImageInfo } from "./types.js";

const STAGE = "/tmp/kiln-stage";
/** Re-run the inline script as root when the SSH user is not (amazon-ebs); a container build already is. */
const AS_ROOT = '[ "$(id -u)" -eq 0 ] || exec sudo -E /bin/sh -eu "$0"';

/** One argument of a systemd ExecStart= line: C-style quoted when needed, specifiers and $ escaped. */
export function systemdArg(s: string): string {
  const escaped = s.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** A systemd Environment= assignment. */
function systemdEnv(key: string, value: string): string {
  return `Environment="${`${key}=${value}`.replace(/%/g, "%%").replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** A POSIX-shell single-quoted word. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Docker `changes` need JSON for ENTRYPOINT/CMD and quoted values for ENV/LABEL. */
function dockerChanges(spec: Spec, image: ImageInfo): string[] {
  const img = spec.image;
  const out = [`USER ${img.user}`, `WORKDIR ${img.workdir}`];
  for (const k of Object.keys(img.env).sort()) out.push(`ENV ${k}=${JSON.stringify(img.env[k])}`);
  if (img.entrypoint.length) out.push(`ENTRYPOINT ${JSON.stringify(img.entrypoint)}`);
  if (img.cmd.length) out.push(`CMD ${JSON.stringify(img.cmd)}`);
  out.push(`EXPOSE ${img.port}`);
  const labels: Record<string, string> = { ...img.labels, ...imageLabels(spec, image) };
  for (const k of Object.keys(labels).sort()) out.push(`LABEL ${JSON.stringify(k)}=${JSON.stringify(labels[k])}`);
  return out;
}

function imageLabels(spec: Spec, image: ImageInfo): Record<string, string> {
  return {
    "org.opencontainers.image.created": image.created,
    "org.opencontainers.image.revision": image.revision ?? "unknown",
    "org.opencontainers.image.title": spec.name,
    "org.opencontainers.image.version": spec.version,
    [LABEL.sourceDigest]: image.digest,
  };
}

interface Staged {
  entry: FileEntry;
  /** where the file provisioner puts it */
  stageDir: string;
  /** the uploaded item's path in the stage (a file, or a directory whose contents are the entry) */
  staged: string;
  source: string;
}

function stageEntries(spec: Spec): Staged[] {
  const all = [...spec.image.dependencies, ...spec.image.files, ...spec.image.config];
  return all.map((entry, i) => {
    const stageDir = `${STAGE}/${i}`;
    // "dir" uploads as <stage>/dir; "dir/" would upload its contents. The whole
    // context (".") is uploaded by contents, everything else under its own name.
    if (entry.src === ".") return { entry, stageDir, staged: stageDir, source: "${var.app_dir}/" };
    return { entry, stageDir, staged: `${stageDir}/${posix.basename(entry.src)}`, source: `\${var.app_dir}/${entry.src}` };
  });
}

function unitFile(spec: Spec, image: ImageInfo, serviceUser: string): string[] {
  const img = spec.image;
  const argv = [...img.entrypoint, ...img.cmd];
  const lines = [
    "[Unit]",
    `Description=${spec.name} ${spec.version} (kiln image ${image.digest})`,
    "After=network-online.target",
    "Wants=network-online.target",
    // The launch environment (kiln.yaml `env`, PORT) is written by the instance's user data;
    // without it the service does not start rather than start half-configured.
    `ConditionPathExists=/run/kiln/${spec.name}.env`,
    "",
    "[Service]",
    "Type=simple",
    `User=${serviceUser}`,
    `Group=${serviceUser}`,
    `WorkingDirectory=${img.workdir}`,
    ...Object.keys(img.env)
      .sort()
      .map((k) => systemdEnv(k, img.env[k]!)),
    `EnvironmentFile=/run/kiln/${spec.name}.env`,
    `ExecStart=${argv.map(systemdArg).join(" ")}`,
    // A failed instance is replaced, never repaired: the load balancer's health check fails
    // and the Auto Scaling group launches a fresh one from the image.
    "Restart=no",
    `TimeoutStopSec=${Math.max(1, Math.min(seconds(spec.drainTimeout), 10))}`,
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    ...(spec.volumes.length ? [`ReadWritePaths=${spec.volumes.map((v) => v.path).join(" ")}`] : []),
    ...(img.port < 1024 ? ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"] : ["CapabilityBoundingSet="]),
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ];
  return lines;
}

export function emitPacker(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const img = spec.image;
  const packages = parsePackagesLabel(img.labels[PACKAGES_LABEL]);
  const staged = stageEntries(spec);
  const nodeRuntime = isNodeBase(img.base);
  const serviceUser = `kiln-${spec.name}`.slice(0, 32);
  const { uid, gid } = userIds(spec);
  const timestamp = image.timestampedName.slice(image.timestampedName.lastIndexOf("-") + 1);
  const tags = obj([
    ["Name", raw("local.image_name")],
    ["kiln:service", spec.name],
    ["kiln:version", spec.version],
    ["kiln:revision", image.revision ?? "unknown"],
    ["kiln:source-digest", image.digest],
    ["kiln:created", image.created],
  ]);

  const variables: HclItem[] = [
    block("variable", ["region"], [attr("type", raw("string")), attr("description", "AWS region the AMI is built in.")]),
    blank,
    block("variable", ["source_ami"], [
      attr("type", raw("string")),
      attr("description", "Debian 12 AMI to start from, pinned by id: a filter would float, and the same template would bake different images."),
    ]),
    blank,
    block("variable", ["instance_type"], [attr("type", raw("string")), attr("default", "t3.small")]),
    blank,
    block("variable", ["ssh_username"], [
      attr("type", raw("string")),
      attr("default", "admin"),
      attr("description", "Login of the source AMI (admin on Debian's). Used only while building; SSH is removed from the image."),
    ]),
    blank,
    block("variable", ["docker_base_image"], [
      attr("type", raw("string")),
      attr("description", "Debian 12 container image pinned by digest, e.g. debian@sha256:..., for the docker build."),
    ]),
    blank,
    block("variable", ["docker_repository"], [attr("type", raw("string")), attr("default", image.repository)]),
    blank,
    block("variable", ["app_dir"], [
      attr("type", raw("string")),
      attr("default", "."),
      attr("description", "The directory holding kiln.yaml: file sources are relative to it."),
    ]),
  ];
  if (nodeRuntime) {
    variables.push(
      blank,
      block("variable", ["node_binary"], [
        attr("type", raw("string")),
        attr("default", "/usr/local/bin/node"),
        attr("description", "The Node.js binary kiln's node base was built from (node -p process.execPath); installed as /usr/local/bin/node."),
      ]),
    );
  }

  const locals = block("locals", [], [
    attr("name", spec.name),
    attr("version", spec.version),
    comment("The image's created time (SOURCE_DATE_EPOCH or the commit's, at bake), not the build's: same input, same name."),
    attr("timestamp", timestamp),
    attr("image_name", template("${local.name}-${local.version}-${local.timestamp}")),
    attr("tags", tags),
  ]);

  const amazon = block("source", ["amazon-ebs", "app"], [
    attr("region", raw("var.region")),
    attr("source_ami", raw("var.source_ami")),
    attr("instance_type", raw("var.instance_type")),
    attr("ssh_username", raw("var.ssh_username")),
    attr("ssh_clear_authorized_keys", true),
    comment("<name>-<version>-<timestamp>"),
    attr("ami_name", template("${local.name}-${local.version}-${local.timestamp}")),
    attr("ami_description", `${spec.name} ${spec.version}, baked by kiln from ${image.digest}`),
    attr("tags", raw("local.tags")),
    attr("snapshot_tags", raw("local.tags")),
    attr("run_tags", raw("local.tags")),
  ]);

  const docker = block("source", ["docker", "app"], [
    attr("image", raw("var.docker_base_image")),
    attr("commit", true),
    attr("changes", dockerChanges(spec, image)),
  ]);

  const build: HclItem[] = [
    attr("name", spec.name),
    attr("sources", ["source.amazon-ebs.app", "source.docker.app"]),
    blank,
  ];

  if (packages.length) {
    const names = packages.map((p) => p.name);
    build.push(
      comment("Debian packages, pinned (image.labels[\"dev.kiln.packages\"] in kiln.yaml), then held: patching is a rebuild."),
      block("provisioner", ["shell"], [
        attr("inline", [
          AS_ROOT,
          "export DEBIAN_FRONTEND=noninteractive",
          "apt-get update",
          `apt-get install -y --no-install-recommends ${packages.map((p) => shQuote(`${p.name}=${p.version}`)).join(" ")}`,
          `apt-mark hold ${names.map(shQuote).join(" ")}`,
          "apt-get clean",
          "rm -rf /var/lib/apt/lists/*",
        ]),
      ]),
      blank,
    );
  } else {
    build.push(comment("No Debian packages are pinned in kiln.yaml (image.labels[\"dev.kiln.packages\"]; `kiln init --packages FILE` writes it)."), blank);
  }

  build.push(
    comment("Staging directories, created as the SSH user so the file provisioner can write to them."),
    block("provisioner", ["shell"], [attr("inline", [`mkdir -p ${[...staged.map((s) => s.stageDir), ...(nodeRuntime ? [`${STAGE}/runtime`] : [])].join(" ")}`])]),
    blank,
  );
  if (nodeRuntime) {
    build.push(
      block("provisioner", ["file"], [
        attr("source", raw("var.node_binary")),
        attr("destination", `${STAGE}/runtime/node`),
        comment("checked when the build uploads it: the binary's path differs between machines"),
        attr("generated", true),
      ]),
      blank,
    );
  }
  for (const s of staged) {
    build.push(
      block("provisioner", ["file"], [
        attr("source", template(s.source)),
        attr("destination", `${s.stageDir}/`),
      ]),
      blank,
    );
  }

  const install = [
    AS_ROOT,
    "# place SRC DEST: a file, or a directory's contents, owned by root and not writable by the service",
    'place() { if [ -d "$1" ]; then mkdir -p "$2" && cp -R "$1/." "$2/"; else mkdir -p "$(dirname "$2")" && cp "$1" "$2"; fi; chown -R root:root "$2"; chmod -R u+rwX,go+rX,go-w "$2"; }',
    "# mode DEST MODE: kiln's file mode (applies to files; directories stay 0755)",
    'mode() { if [ -d "$1" ]; then find "$1" -type f -exec chmod "$2" {} +; else chmod "$2" "$1"; fi; }',
  ];
  if (nodeRuntime) install.push(`install -m 0755 -o root -g root ${STAGE}/runtime/node /usr/local/bin/node`);
  for (const s of staged) {
    install.push(`place ${shQuote(s.staged)} ${shQuote(s.entry.dest)}`);
    if (s.entry.mode) install.push(`mode ${shQuote(s.entry.dest)} ${s.entry.mode}`);
  }
  for (const v of spec.volumes) install.push(`mkdir -p ${shQuote(v.path)}`);
  install.push(
    `id -u ${serviceUser} >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${serviceUser}`,
    "mkdir -p /etc/kiln /etc/systemd/system/multi-user.target.wants",
    `cat > /etc/kiln/${spec.name}.json <<'JSON'`,
    JSON.stringify({ name: spec.name, version: spec.version, digest: image.digest, revision: image.revision ?? null, created: image.created }),
    "JSON",
    `cat > /etc/systemd/system/${spec.name}.service <<'UNIT'`,
    ...unitFile(spec, image, serviceUser),
    "UNIT",
    `ln -sf ../${spec.name}.service /etc/systemd/system/multi-user.target.wants/${spec.name}.service`,
  );
  build.push(
    comment(
      `The image's own layers: runtime, dependencies, app and config, as in kiln.yaml. On the VM the service runs as the\nsystem user ${serviceUser} (uid ${uid} is the AMI's login user); the container keeps kiln's ${uid}:${gid}.`,
    ),
    block("provisioner", ["shell"], [attr("inline", install)]),
    blank,
    comment("Last: no SSH in production (nothing is changed after launch), and no unattended upgrades (patching is a rebuild)."),
    block("provisioner", ["shell"], [
      attr("inline", [
        AS_ROOT,
        "systemctl disable ssh.service ssh.socket || true",
        "systemctl mask ssh.service ssh.socket || true",
        "# the same without a running systemd (the container build): a unit linked to /dev/null is masked",
        "mkdir -p /etc/systemd/system",
        "for unit in ssh.service ssh.socket apt-daily.timer apt-daily-upgrade.timer unattended-upgrades.service; do ln -sf /dev/null /etc/systemd/system/$unit; done",
        "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub",
        "rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys",
        `rm -rf ${STAGE}`,
      ]),
    ]),
    blank,
    block("post-processor", ["manifest"], [
      attr("output", "packer-manifest.json"),
      attr("strip_path", true),
      attr(
        "custom_data",
        obj([
          ["image_name", raw("local.image_name")],
          ["version", spec.version],
          ["revision", image.revision ?? "unknown"],
          ["source_digest", image.digest],
          ["created", image.created],
        ]),
      ),
    ]),
    blank,
    block("post-processor", ["docker-tag"], [
      attr("only", ["docker.app"]),
      attr("repository", raw("var.docker_repository")),
      attr("tags", [spec.version, raw("local.image_name")]),
    ]),
  );

  const main = renderHcl([
    ...headerLines(spec, image, "packer").map((l) => comment(l)),
    comment(""),
    comment("Build from the directory holding kiln.yaml (file sources are relative to it):"),
    comment(`  packer build -var region=eu-west-1 -var source_ami=ami-... -var docker_base_image=debian@sha256:... ${spec.name}.pkr.hcl`),
    comment("Debian's Packer 1.6.6 reads this file as is. Packer 1.7 and later load builders as plugins:"),
    comment("rename plugins.pkr.hcl.example to plugins.pkr.hcl and run `packer init .` first."),
    blank,
    block("packer", [], [attr("required_version", ">= 1.6.6")]),
    blank,
    ...variables,
    blank,
    locals,
    blank,
    amazon,
    blank,
    docker,
    blank,
    block("build", [], build),
  ]);

  const plugins = renderHcl([
    comment("Plugins for Packer 1.7 and later. Packer 1.6.6 (Debian's) has these builders built in and rejects this block,"),
    comment(`so it is kept out of its way: rename this file to plugins.pkr.hcl, then run \`packer init .\` before \`packer build\`.`),
    blank,
    block("packer", [], [
      block("required_plugins", [], [
        attr("amazon", obj([["version", ">= 1.2.0"], ["source", "github.com/hashicorp/amazon"]])),
        attr("docker", obj([["version", ">= 1.0.0"], ["source", "github.com/hashicorp/docker"]])),
      ]),
    ]),
  ]);

  return [
    { path: `${spec.name}.pkr.hcl`, content: main },
    { path: "plugins.pkr.hcl.example", content: plugins },
  ];
}
