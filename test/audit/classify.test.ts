import assert from "node:assert/strict";
import { test } from "node:test";
import { classify, classifySsh, classifyWrites, isRootUser, normalizeChanges, verdictOf, writtenFilesOutsideVolumes, type AuditObservations } from "../../src/audit/classify.js";
import { fromDockerChanges } from "../../src/audit/docker-sandbox.js";
import type { PathChange } from "../../src/audit/types.js";

const f = (path: string, change: PathChange["change"] = "created"): PathChange => ({ path, change, isDir: false });
const d = (path: string, change: PathChange["change"] = "created"): PathChange => ({ path, change, isDir: true });

test("writes: volumes, /tmp, mount points and modified directories are not findings", () => {
  const cases: { name: string; changes: PathChange[]; volumes: string[]; want: string[] }[] = [
    { name: "inside a volume", changes: [f("/data/counter/a.json")], volumes: ["/data"], want: [] },
    { name: "the volume mount point itself", changes: [d("/data")], volumes: ["/data"], want: [] },
    { name: "a parent of a mount point", changes: [d("/srv"), d("/srv/uploads")], volumes: ["/srv/uploads"], want: [] },
    { name: "/tmp is scratch", changes: [d("/tmp", "modified"), f("/tmp/x")], volumes: [], want: [] },
    { name: "runtime files", changes: [d("/sbin"), f("/sbin/docker-init"), f("/etc/hosts", "modified")], volumes: [], want: [] },
    { name: "a look-alike of a volume path is outside it", changes: [f("/data2/x")], volumes: ["/data"], want: ["created /data2/x"] },
    { name: "a log appended under /app", changes: [d("/app", "modified"), f("/app/access.log", "modified")], volumes: ["/data"], want: ["modified /app/access.log"] },
    { name: "a deleted file", changes: [f("/app/cache.db", "deleted")], volumes: [], want: ["deleted /app/cache.db"] },
    {
      name: "a small new tree is listed by its files",
      changes: [d("/var"), d("/var/lib"), d("/var/lib/app"), f("/var/lib/app/s.json")],
      volumes: [],
      want: ["created /var/lib/app/s.json"],
    },
    { name: "an empty new directory is reported", changes: [d("/run/app")], volumes: [], want: ["created /run/app"] },
  ];
  for (const c of cases) {
    const got = classifyWrites(c.changes, c.volumes).map((x) => (x.kind === "write-outside-volumes" ? `${x.change} ${x.path}` : x.kind));
    assert.deepEqual(got, c.want, c.name);
  }
});

test("writes: a big new tree is one finding with a count; sibling paths do not fold into it", () => {
  const many = Array.from({ length: 30 }, (_, i) => f(`/root/.npm/_cacache/${String(i).padStart(2, "0")}`));
  const got = classifyWrites([d("/root", "modified"), d("/root/.npm"), d("/root/.npm/_cacache"), ...many, f("/root/.npm-x")], []);
  assert.deepEqual(
    got.map((x) => (x.kind === "write-outside-volumes" ? [x.path, x.entries ?? 0] : [])),
    [
      ["/root/.npm", 31],
      ["/root/.npm-x", 0],
    ],
  );
  assert.equal(got[0]!.severity, "fail");
  assert.match(got[0]!.hint, /move it to a declared volume .* or an external store/);
  assert.equal(normalizeChanges([d("/a", "modified")]).length, 0);
});

test("files written outside volumes are the candidates for the restart probe", () => {
  assert.deepEqual(
    writtenFilesOutsideVolumes([f("/data/x"), f("/app/log", "modified"), f("/app/gone", "deleted"), d("/var/lib/app"), f("/var/lib/app/s.json")], ["/data"]),
    ["/app/log", "/var/lib/app/s.json"],
  );
});

test("root users", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n";
  const cases: [string, boolean][] = [
    ["", true],
    ["0", true],
    ["0:0", true],
    ["root", true],
    ["root:staff", true],
    ["toor", true],
    ["app", false],
    ["1000:1000", false],
    ["1000:0", false],
    ["nobody-known", false],
  ];
  for (const [user, want] of cases) assert.equal(isRootUser(user, passwd), want, JSON.stringify(user));
});

test("SSH servers: shipped, running, listening on 22, exposed", () => {
  const files = [
    { path: "/usr/sbin/sshd", kind: "file" as const, size: 1, executable: true },
    { path: "/usr/share/doc/sshd", kind: "file" as const, size: 1, executable: false },
    { path: "/usr/bin/ssh", kind: "file" as const, size: 1, executable: true },
    { path: "/usr/sbin/dropbear", kind: "file" as const, size: 1, executable: true },
  ];
  const got = classifySsh(files, [{ pid: 7, comm: "sshd", exe: "/usr/sbin/sshd" }, { pid: 8, comm: "node", exe: "node" }], [8080, 22], ["22/tcp", "8080/tcp"]);
  assert.deepEqual(
    got.map((x) => (x.kind === "ssh-daemon" ? `${x.evidence} ${x.path ?? x.pid ?? ""}` : "")),
    ["binary /usr/sbin/sshd", "binary /usr/sbin/dropbear", "process 7", "listening-22 ", "exposed-22 "],
  );
  assert.deepEqual(classifySsh(files.slice(1, 3), [], [8080], ["8080/tcp"]), []);
});

function obs(over: Partial<AuditObservations>): AuditObservations {
  return {
    volumes: ["/data"],
    changes: [],
    user: "1000:1000",
    files: [],
    secrets: [],
    env: ["NODE_ENV=production"],
    exposedPorts: [],
    processes: [],
    listeningPorts: [],
    carried: [],
    runs: [
      { phase: "first-start", healthy: true, smoke: [] },
      { phase: "after-restart", healthy: true, smoke: [] },
    ],
    ...over,
  };
}

test("verdicts: pass, warn, fail; blocking findings sort first", () => {
  assert.equal(verdictOf(classify(obs({}))), "pass");
  assert.equal(verdictOf(classify(obs({ env: ["API_TOKEN=abc"] }))), "warn");
  assert.equal(verdictOf(classify(obs({ secrets: [{ path: "/app/.env", hits: [{ kind: "dotenv-secret", line: 2, what: "DB_PASSWORD" }] }] }))), "warn");
  assert.equal(verdictOf(classify(obs({ carried: ["/app/s.json"] }))), "warn");
  const failing = classify(obs({ env: ["API_TOKEN=abc"], user: "", changes: [f("/app/log")], secrets: [{ path: "/k", hits: [{ kind: "private-key", line: 1, what: "RSA private key" }] }] }));
  assert.equal(verdictOf(failing), "fail");
  assert.deepEqual(
    failing.map((x) => `${x.severity} ${x.kind}`),
    ["fail write-outside-volumes", "fail runs-as-root", "fail secret-file", "warn secret-env"],
  );
  const unhealthy = classify(obs({ runs: [{ phase: "first-start", healthy: false, healthError: "ECONNREFUSED", smoke: [] }] }));
  assert.deepEqual(unhealthy.map((x) => x.kind), ["unhealthy"]);
  const smoke = classify(obs({ runs: [{ phase: "first-start", healthy: true, smoke: [{ request: "POST /x", ok: false, status: 404 }] }] }));
  assert.deepEqual(smoke.map((x) => `${x.severity} ${x.kind}`), ["warn smoke-failed"]);
  assert.match(smoke[0]!.message, /HTTP 404/);
});

test("docker diff lines become changes; a path with changes below it is a directory", () => {
  const got = fromDockerChanges(
    [
      { Path: "/app", Kind: 0 },
      { Path: "/app/access.log", Kind: 1 },
      { Path: "/var", Kind: 1 },
      { Path: "/var/empty", Kind: 1 },
      { Path: "/old", Kind: 2 },
    ],
    (p) => (p === "/var/empty" ? true : undefined),
  );
  assert.deepEqual(got, [
    { path: "/app", change: "modified", isDir: true },
    { path: "/app/access.log", change: "created", isDir: false },
    { path: "/var", change: "created", isDir: true },
    { path: "/var/empty", change: "created", isDir: true },
    { path: "/old", change: "deleted", isDir: false },
  ]);
});
