import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isKilnError, KilnError } from "../../src/errors.js";

// The controls added for issue 3, at their defaults.
const ROLLING_DEFAULTS = { checkpoints: [], skipMatching: false, bakeTime: 0 };
const BLUE_GREEN_DEFAULTS = { prePromotionChecks: [], guardWindow: 0 };
const CANARY_DEFAULTS = {
  steps: [{ setWeight: 20 }, { pause: 30_000 }, { setWeight: 50 }, { pause: 30_000 }],
  analysis: { maxErrorRate: 0.05, maxP99Ratio: 3, minRequests: 20, window: 30_000 },
  instanceWarmup: 2000,
  deadline: 1_800_000,
  autoRollback: true,
  guardWindow: 0,
};
import { loadSpec, parseImageBase, parseSpec, type Spec, type SpecProblem } from "../../src/config/index.js";

function ok(text: string): Spec {
  const r = parseSpec(text, "kiln.yaml");
  if ("errors" in r) assert.fail(`unexpected problems:\n${r.errors.map((p) => `${p.where} ${p.path}: ${p.message}`).join("\n")}`);
  return r.spec;
}

function problems(text: string): SpecProblem[] {
  const r = parseSpec(text, "kiln.yaml");
  if ("spec" in r) assert.fail("expected problems, got a spec");
  return r.errors;
}

function byPath(ps: SpecProblem[], path: string): SpecProblem {
  const p = ps.find((x) => x.path === path);
  assert.ok(p, `no problem at ${path}; got:\n${ps.map((x) => `${x.where} ${x.path}: ${x.message}`).join("\n")}`);
  return p;
}

const FULL = `apiVersion: kiln/v1
name: hello
version: "1.4.2"
image:
  base: oci:./base:22
  dependencies:
    - node_modules
  files:
    - ./dist/
    - src: bin/start.sh
      dest: /usr/local/bin/start
      mode: "0755"
  config:
    - config/app.json
  workdir: /srv/app/
  env:
    NODE_ENV: production
  entrypoint: [node]
  cmd: [dist/server.js]
  user: "1001:1001"
  port: 3000
  labels:
    org.opencontainers.image.source: https://example.com/hello
  compression: none
instances: 5
listen: 0.0.0.0:9000
router: haproxy
edge:
  instanceHeaders: true
  maxBodyBytes: 1024
  headerTimeout: 2s
  requestTimeout: 1m
  keepAliveTimeout: 500ms
  connectTimeout: 1
  upstreamTimeout: 30s
  tunnelIdleTimeout: 0
swarm:
  rollouts: native
  manager: unix:///run/swarm-manager.sock
  registry: 10.77.0.1:5000/acme
  insecureRegistry: true
  constraints: ["node.labels.zone == a", "node.role!=manager"]
  spread: false
env:
  LOG_LEVEL: info
volumes:
  - name: uploads
    path: /var/uploads/
drainTimeout: 45
health:
  path: /ready
  interval: 500ms
  timeout: 1.5s
  healthyThreshold: 1
  unhealthyThreshold: 5
  grace: 10s
strategy:
  type: blue-green
  rolling:
    minHealthyPercent: 50
    maxHealthyPercent: 150
    instanceWarmup: 0
    deadline: 2m
    autoRollback: false
  blueGreen:
    keepPreviousFor: 1h
    promotion: manual
    deadline: 15m
    autoRollback: false
docker:
  network: host
`;

describe("parseSpec: a valid file", () => {
  it("reads every key, normalizing file entries and durations", () => {
    const spec = ok(FULL);
    assert.deepEqual(spec, {
      apiVersion: "kiln/v1",
      name: "hello",
      version: "1.4.2",
      image: {
        base: "oci:./base:22",
        dependencies: [{ src: "node_modules", dest: "/srv/app/node_modules" }],
        files: [
          { src: "dist", dest: "/srv/app/dist" },
          { src: "bin/start.sh", dest: "/usr/local/bin/start", mode: "0755" },
        ],
        config: [{ src: "config/app.json", dest: "/srv/app/config/app.json" }],
        workdir: "/srv/app",
        env: { NODE_ENV: "production" },
        entrypoint: ["node"],
        cmd: ["dist/server.js"],
        user: "1001:1001",
        port: 3000,
        labels: { "org.opencontainers.image.source": "https://example.com/hello" },
        compression: "none",
      },
      instances: 5,
      listen: "0.0.0.0:9000",
      provider: "local",
      router: "haproxy",
      edge: {
        instanceHeaders: true,
        maxBodyBytes: 1024,
        headerTimeout: 2000,
        requestTimeout: 60_000,
        keepAliveTimeout: 500,
        connectTimeout: 1000,
        upstreamTimeout: 30_000,
        tunnelIdleTimeout: 0,
        hosts: [],
      },
      swarm: {
        rollouts: "native",
        manager: "unix:///run/swarm-manager.sock",
        registry: "10.77.0.1:5000/acme",
        insecureRegistry: true,
        constraints: ["node.labels.zone==a", "node.role!=manager"],
        spread: false,
      },
      env: { LOG_LEVEL: "info" },
      volumes: [{ name: "uploads", path: "/var/uploads" }],
      drainTimeout: 45_000,
      health: {
        path: "/ready",
        interval: 500,
        timeout: 1500,
        healthyThreshold: 1,
        unhealthyThreshold: 5,
        grace: 10_000,
      },
      strategy: {
        type: "blue-green",
        rolling: {
          minHealthyPercent: 50,
          maxHealthyPercent: 150,
          instanceWarmup: 0,
          deadline: 120_000,
          autoRollback: false,
          ...ROLLING_DEFAULTS,
        },
        blueGreen: { keepPreviousFor: 3_600_000, promotion: "manual", deadline: 900_000, autoRollback: false, ...BLUE_GREEN_DEFAULTS },
        canary: CANARY_DEFAULTS,
        maxQuarantined: 1,
      },
      docker: { network: "host" },
      promotion: { requireDrill: false },
      hooks: { timeout: 300_000 },
      notify: { webhooks: [], queueSize: 1000 },
      controller: {},
      policy: { signedBy: [], requireSbom: false, runtimeSupported: false },
      secrets: {},
      network: { mode: "private", allow: [] },
    });
  });

  it("fills every default from the schema", () => {
    const spec = ok("name: svc\nversion: v1\n");
    assert.deepEqual(spec, {
      apiVersion: "kiln/v1",
      name: "svc",
      version: "v1",
      image: {
        base: "node",
        dependencies: [],
        files: [],
        config: [],
        workdir: "/app",
        env: {},
        entrypoint: [],
        cmd: [],
        user: "1000:1000",
        port: 8080,
        labels: {},
        compression: "gzip",
      },
      instances: 3,
      listen: "127.0.0.1:8080",
      provider: "local",
      router: "builtin",
      edge: {
        instanceHeaders: false,
        maxBodyBytes: 10_485_760,
        headerTimeout: 10_000,
        requestTimeout: 300_000,
        keepAliveTimeout: 5000,
        connectTimeout: 2000,
        upstreamTimeout: 60_000,
        tunnelIdleTimeout: 3_600_000,
        hosts: [],
      },
      swarm: { rollouts: "kiln", insecureRegistry: false, constraints: [], spread: true },
      env: {},
      volumes: [],
      drainTimeout: 30_000,
      health: { path: "/healthz", interval: 1000, timeout: 2000, healthyThreshold: 2, unhealthyThreshold: 3, grace: 0 },
      strategy: {
        type: "rolling",
        rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 2000, deadline: 300_000, autoRollback: true, ...ROLLING_DEFAULTS },
        blueGreen: { keepPreviousFor: 600_000, promotion: "auto", deadline: 300_000, autoRollback: true, ...BLUE_GREEN_DEFAULTS },
        canary: CANARY_DEFAULTS,
        maxQuarantined: 1,
      },
      docker: { network: "bridge" },
      promotion: { requireDrill: false },
      hooks: { timeout: 300_000 },
      notify: { webhooks: [], queueSize: 1000 },
      controller: {},
      policy: { signedBy: [], requireSbom: false, runtimeSupported: false },
      secrets: {},
      network: { mode: "private", allow: [] },
    });
  });

  it("fills defaults inside a partly written section", () => {
    const spec = ok("name: svc\nversion: v1\nhealth:\n  path: /up\nstrategy:\n  rolling:\n    minHealthyPercent: 75\n");
    assert.equal(spec.health.path, "/up");
    assert.equal(spec.health.interval, 1000);
    assert.equal(spec.strategy.type, "rolling");
    assert.equal(spec.strategy.rolling.minHealthyPercent, 75);
    assert.equal(spec.strategy.rolling.maxHealthyPercent, 150);
  });

  it("reads hooks (a shell line or an argv) and webhooks with their defaults", () => {
    const spec = ok(
      [
        "name: svc",
        "version: v1",
        "hooks:",
        '  pre-deploy: "./check.sh && echo ok"',
        "  post-rollback: [./notify, --rolled-back]",
        "  timeout: 30s",
        "notify:",
        "  webhooks:",
        "    - { url: https://hooks.example/kiln, secretEnv: KILN_WEBHOOK_SECRET }",
        "    - { url: https://hooks.slack.example/T1/B2, format: slack, events: [rollout.live, rollout.aborted], attempts: 3, backoff: 500ms }",
        "",
      ].join("\n"),
    );
    assert.deepEqual(spec.hooks, { "pre-deploy": "./check.sh && echo ok", "post-rollback": ["./notify", "--rolled-back"], timeout: 30_000 });
    assert.deepEqual(spec.notify, {
      queueSize: 1000,
      webhooks: [
        { url: "https://hooks.example/kiln", secretEnv: "KILN_WEBHOOK_SECRET", format: "json", events: [], timeout: 10_000, attempts: 6, backoff: 2000 },
        { url: "https://hooks.slack.example/T1/B2", format: "slack", events: ["rollout.live", "rollout.aborted"], timeout: 10_000, attempts: 3, backoff: 500 },
      ],
    });
  });

  it("refuses an unknown hook, a secret written in the file and an unknown event, each at its path", () => {
    const r = parseSpec(
      ["name: svc", "version: v1", "hooks:", "  pre-deploi: ./x", "notify:", "  webhooks:", "    - { url: ftp://x, secret: hunter2, events: [rollout.done] }", ""].join("\n"),
      "kiln.yaml",
    );
    assert.ok("errors" in r);
    const paths = r.errors.map((p) => p.path);
    for (const p of ["hooks.pre-deploi", "notify.webhooks[0].url", "notify.webhooks[0].secret", "notify.webhooks[0].events[0]"]) assert.ok(paths.some((x) => x.startsWith(p)), `${p} in ${paths.join(", ")}`);
  });

  it("accepts instances: 0 and the edge of max − min = 100", () => {
    const spec = ok("name: svc\nversion: v1\ninstances: 0\nstrategy:\n  rolling:\n    minHealthyPercent: 100\n    maxHealthyPercent: 200\n");
    assert.equal(spec.instances, 0);
    assert.equal(spec.strategy.rolling.maxHealthyPercent, 200);
  });

  it("edge.tls and edge.metricsListen: paths kept as written, redirectHttp defaults to false", () => {
    const spec = ok("name: svc\nversion: v1\nedge:\n  metricsListen: 127.0.0.1:9100\n  tls:\n    listen: 127.0.0.1:8443\n    certificates:\n      - { cert: certs/a.pem, key: certs/a.key }\n      - { cert: /etc/b.pem, key: /etc/b.key }\n");
    assert.deepEqual(spec.edge.tls, { listen: "127.0.0.1:8443", certificates: [{ cert: "certs/a.pem", key: "certs/a.key" }, { cert: "/etc/b.pem", key: "/etc/b.key" }], redirectHttp: false });
    assert.equal(spec.edge.metricsListen, "127.0.0.1:9100");
  });

  it("edge.tls without certificates, or an unknown key, is a problem at its path", () => {
    const ps = problems("name: svc\nversion: v1\nedge:\n  tls:\n    listen: 127.0.0.1:8443\n    certificates: []\n    redirect: true\n");
    byPath(ps, "edge.tls.certificates");
    byPath(ps, "edge.tls.redirect");
  });
});

// Each problem on its own line, so the expected line:col are easy to read off.
const BROKEN = [
  /* 1 */ "name: hello",
  /* 2 */ "version: v1",
  /* 3 */ "imgae:",
  /* 4 */ "  base: node",
  /* 5 */ "instances: three",
  /* 6 */ "health:",
  /* 7 */ "  interval: 5 min",
  /* 8 */ "  healthyTreshold: 2",
  /* 9 */ "strategy:",
  /* 10 */ "  type: blue-gren",
  /* 11 */ "  rolling:",
  /* 12 */ "    minHealthyPercent: 120",
  /* 13 */ "image:",
  /* 14 */ "  user: root",
  /* 15 */ "  port: 8080",
  /* 16 */ "  port: 8081",
  /* 17 */ "  files:",
  /* 18 */ "    - ../secrets.env",
  /* 19 */ "    - {src: app.js, dest: app.js}",
  /* 20 */ "drainTimeout: -1",
  "",
].join("\n");

describe("parseSpec: a broken file", () => {
  const ps = problems(BROKEN);
  const expected: [path: string, where: string, message: RegExp][] = [
    ["imgae", "kiln.yaml:3:1", /^unknown key "imgae"$/],
    ["instances", "kiln.yaml:5:12", /^expected an integer 0–1000, got "three"$/],
    ["health.interval", "kiln.yaml:7:13", /^expected a duration like .*, got "5 min"$/],
    ["health.healthyTreshold", "kiln.yaml:8:3", /^unknown key "healthyTreshold"$/],
    ["strategy.type", "kiln.yaml:10:9", /^expected one of "rolling", "blue-green" or "canary", got "blue-gren"$/],
    ["strategy.rolling.minHealthyPercent", "kiln.yaml:12:24", /^expected an integer 0–100, got 120$/],
    ["image.user", "kiln.yaml:14:9", /root/],
    ["image.port", "kiln.yaml:16:3", /^duplicate key "port"$/],
    ["image.files[0]", "kiln.yaml:18:7", /outside the kiln.yaml directory/],
    ["image.files[1].dest", "kiln.yaml:19:27", /^expected an absolute path .*, got "app.js"$/],
    ["drainTimeout", "kiln.yaml:20:15", /^expected a duration like .*, got -1$/],
  ];

  it("reports every problem, once, sorted by position", () => {
    assert.deepEqual(
      ps.map((p) => p.path),
      expected.map(([path]) => path),
    );
  });

  for (const [path, where, message] of expected) {
    it(`${path} at ${where}`, () => {
      const p = byPath(ps, path);
      assert.equal(p.where, where);
      assert.match(p.message, message);
    });
  }

  it("hints at the intended key or value", () => {
    assert.equal(byPath(ps, "imgae").hint, 'did you mean "image"?');
    assert.equal(byPath(ps, "health.healthyTreshold").hint, 'did you mean "healthyThreshold"?');
    assert.equal(byPath(ps, "strategy.type").hint, 'did you mean "blue-green"?');
    assert.equal(byPath(ps, "health.interval").hint, 'write it as "5m"');
    assert.match(byPath(ps, "image.user").hint ?? "", /1000:1000/);
    assert.match(byPath(ps, "image.files[0]").hint ?? "", /relative to the directory of kiln.yaml/);
  });

  it("points a missing required key at its parent mapping", () => {
    const missing = problems("# a comment\nversion: v1\nimage:\n  files:\n    - {dest: /x}\n");
    assert.equal(byPath(missing, "name").where, "kiln.yaml:2:1");
    assert.equal(byPath(missing, "name").message, 'missing required key "name"');
    assert.equal(byPath(missing, "image.files[0].src").where, "kiln.yaml:5:7");
  });
});

describe("parseSpec: YAML syntax errors", () => {
  it("reports each syntax error with its location, and no schema noise", () => {
    // imgae and instances are schema problems, left out while the syntax is broken.
    const ps = problems("name: hello\nversion: v1: x\nimgae: {}\ninstances: many\nlisten: @x\n");
    assert.deepEqual(
      ps.map((p) => p.where),
      ["kiln.yaml:2:10", "kiln.yaml:5:9"],
    );
    for (const p of ps) {
      assert.match(p.message, /^YAML: /);
      assert.equal(p.path, "");
    }
  });

  it("hints at an unclosed quote", () => {
    const ps = problems('name: hello\nversion: "v1\nimage:\n  port: 80\n');
    assert.equal(ps.length, 1);
    assert.match(ps[0]!.message, /closing "quote/);
    assert.equal(ps[0]!.hint, "a quote or bracket is not closed");
  });

  it("refuses several documents", () => {
    const ps = problems("name: a\n---\nname: b\n");
    assert.equal(ps[0]!.where, "kiln.yaml:2:1");
    assert.match(ps[0]!.hint ?? "", /one document/);
  });

  it("reports a bad indent at its line", () => {
    const ps = problems("name: hello\nversion: v1\nhealth:\n  path: /x\n interval: 1s\n");
    assert.ok(ps.some((p) => p.where.startsWith("kiln.yaml:5:")), JSON.stringify(ps));
  });

  it("reports an unknown alias", () => {
    const ps = problems("name: hello\nversion: *v\n");
    assert.equal(ps.length, 1);
    assert.equal(ps[0]!.where, "kiln.yaml:2:10");
    assert.match(ps[0]!.message, /unknown alias "\*v"/);
  });

  it("says an empty file is empty", () => {
    assert.match(problems("")[0]!.message, /empty/);
    assert.match(problems("# just a comment\n")[0]!.message, /empty/);
  });

  it("refuses a list at the top", () => {
    const [p] = problems("- a\n");
    assert.equal(p!.message, "expected a mapping, got a list");
    assert.equal(p!.where, "kiln.yaml:1:1");
  });
});

describe("parseSpec: single rules", () => {
  const base = "name: svc\nversion: v1\n";

  it("suggests where a misplaced key belongs", () => {
    const p = byPath(problems(`${base}port: 80\n`), "port");
    assert.equal(p.hint, '"port" belongs at image.port');
  });

  it("lists the allowed keys when nothing is close", () => {
    const p = byPath(problems(`${base}health:\n  zzz: 1\n`), "health.zzz");
    assert.match(p.hint ?? "", /^allowed keys here: path, interval/);
  });

  it("suggests quoting YAML numbers meant as strings", () => {
    const ps = problems("name: svc\nversion: 1.0\nimage:\n  files:\n    - {src: a, dest: /a, mode: 0755}\n");
    const v = byPath(ps, "version");
    assert.match(v.message, /got 1\.0$/);
    assert.equal(v.hint, 'quote it to keep it a string: version: "1.0"');
    assert.equal(byPath(ps, "image.files[0].mode").hint, 'quote it to keep it a string: mode: "0755"');
  });

  it("rejects every spelling of root", () => {
    for (const user of ['"0"', '"0:0"', "root", '"0:1000"', '"root:root"']) {
      const p = byPath(problems(`${base}image:\n  user: ${user}\n`), "image.user");
      assert.match(p.message, /may not run as root/, user);
    }
    ok(`${base}image:\n  user: "1000"\n`);
  });

  it("checks max − min ≤ 100, pointing at the key that was written", () => {
    const both = byPath(
      problems(`${base}strategy:\n  rolling:\n    minHealthyPercent: 40\n    maxHealthyPercent: 160\n`),
      "strategy.rolling.maxHealthyPercent",
    );
    assert.equal(both.message, "maxHealthyPercent − minHealthyPercent must be at most 100, got 160 − 40 = 120");
    assert.equal(both.hint, "lower maxHealthyPercent to 140 or raise minHealthyPercent to 60");
    // max defaults to 150, so min 40 alone breaks the rule.
    const minOnly = problems(`${base}strategy:\n  rolling:\n    minHealthyPercent: 40\n`);
    assert.equal(byPath(minOnly, "strategy.rolling.minHealthyPercent").where, "kiln.yaml:5:24");
  });

  it("requires unique volume names and paths", () => {
    const ps = problems(`${base}volumes:\n  - {name: a, path: /data}\n  - {name: a, path: /data/}\n`);
    assert.match(byPath(ps, "volumes[1].name").message, /duplicate volume name "a"/);
    assert.match(byPath(ps, "volumes[1].path").message, /duplicate volume path "\/data"/);
  });

  it("refuses absolute and escaping file sources", () => {
    const ps = problems(`${base}image:\n  config:\n    - /etc/passwd\n    - a/../../b\n    - {src: ../x, dest: /x}\n`);
    assert.match(byPath(ps, "image.config[0]").message, /absolute path/);
    assert.match(byPath(ps, "image.config[1]").message, /outside/);
    assert.match(byPath(ps, "image.config[2].src").message, /outside/);
    ok(`${base}image:\n  files:\n    - a/../b\n    - .\n`);
  });

  it("checks env names and values", () => {
    const ps = problems(`${base}env:\n  1BAD: x\n  GOOD: 3\n`);
    assert.match(byPath(ps, 'env["1BAD"]').message, /invalid key "1BAD"/);
    assert.equal(byPath(ps, "env.GOOD").hint, 'quote it to keep it a string: GOOD: "3"');
  });

  it("asks for the exact apiVersion", () => {
    const p = byPath(problems(`apiVersion: kiln/v2\n${base}`), "apiVersion");
    assert.equal(p.message, 'expected "kiln/v1", got "kiln/v2"');
  });

  it("sees a strategy name written where a mapping goes", () => {
    const p = byPath(problems(`${base}strategy: blue-green\n`), "strategy");
    assert.equal(p.message, 'expected a mapping, got "blue-green"');
    assert.equal(p.hint, "write strategy: {type: blue-green}");
  });

  it("suggests the key for a misspelled file entry field", () => {
    const p = byPath(problems(`${base}image:\n  files:\n    - {src: a, dest: /a, mod: "0644"}\n`), "image.files[0].mod");
    assert.equal(p.hint, 'did you mean "mode"?');
  });

  it("explains an empty section", () => {
    const p = byPath(problems(`${base}health:\n`), "health");
    assert.equal(p.message, "expected a mapping, got an empty value");
    assert.equal(p.where, "kiln.yaml:3:1");
  });

  it("checks the listen port range", () => {
    assert.match(byPath(problems(`${base}listen: "127.0.0.1:70000"\n`), "listen").message, /1–65535/);
    assert.match(byPath(problems(`${base}listen: "8080"\n`), "listen").message, /host:port/);
    assert.equal(ok(`${base}listen: "[::1]:8080"\n`).listen, "[::1]:8080");
  });

  it("state: absent (SQLite in the home) or a PostgreSQL URL", () => {
    assert.equal(ok(base).state, undefined);
    assert.equal(ok(`${base}state: postgres://kiln@db:5432/kiln?schema=svc\n`).state, "postgres://kiln@db:5432/kiln?schema=svc");
    assert.match(byPath(problems(`${base}state: /var/lib/kiln/state.db\n`), "state").message, /PostgreSQL URL/);
  });
});

describe("loadSpec", () => {
  it("returns absolute file, dir and config hash", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-spec-"));
    try {
      writeFileSync(join(dir, "kiln.yaml"), "name: svc\nversion: v1\n");
      const loaded = loadSpec(join(dir, "kiln.yaml"));
      assert.equal(loaded.file, join(dir, "kiln.yaml"));
      assert.equal(loaded.dir, dir);
      assert.match(loaded.configHash, /^sha256:[0-9a-f]{64}$/);
      assert.equal(loaded.spec.name, "svc");
      // A directory means its kiln.yaml.
      assert.equal(loadSpec(dir).file, join(dir, "kiln.yaml"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("throws one KILN_E_SPEC error listing every problem", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-spec-"));
    try {
      const file = join(dir, "kiln.yaml");
      writeFileSync(file, BROKEN);
      assert.throws(
        () => loadSpec(file),
        (e: unknown) => {
          assert.ok(isKilnError(e));
          assert.equal(e.code, "KILN_E_SPEC");
          assert.equal(e.message, `${file}: 11 problems`);
          assert.equal(e.details.length, 11);
          assert.ok(e.details.every((d) => d.where?.startsWith(`${file}:`)));
          assert.equal(e.exitCode, 2);
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says when the file cannot be read", () => {
    assert.throws(() => loadSpec("/nonexistent/kiln.yaml"), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_SPEC" && /ENOENT/.test(e.message));
  });
});

describe("parseImageBase", () => {
  it("splits kind, path and tag", () => {
    assert.deepEqual(parseImageBase("node"), { kind: "node" });
    assert.deepEqual(parseImageBase("oci:./base"), { kind: "oci", path: "./base" });
    assert.deepEqual(parseImageBase("oci:./base:22"), { kind: "oci", path: "./base", tag: "22" });
    assert.deepEqual(parseImageBase("oci:/tmp/x.tar:v1.2"), { kind: "oci", path: "/tmp/x.tar", tag: "v1.2" });
    assert.deepEqual(parseImageBase("docker-archive:img.tar"), { kind: "docker-archive", path: "img.tar" });
  });
});

describe("swarm settings", () => {
  const base = "name: hello\nversion: v1\nimage: {}\nprovider: swarm\n";
  it("refuses a constraint Swarm would not read, a bad registry and an unknown rollouts value, naming each key", () => {
    const ps = problems(`${base}swarm:\n  rollouts: swarm\n  registry: "http://10.77.0.1:5001"\n  constraints: ["zone=a", "node.labels.zone==a"]\n`);
    assert.match(byPath(ps, "swarm.rollouts").message, /"kiln".*"native"|kiln.*native/);
    assert.match(byPath(ps, "swarm.registry").message, /registry "HOST\[:PORT\]"/);
    assert.match(byPath(ps, "swarm.constraints[0]").message, /placement constraint/);
    assert.ok(!ps.some((p) => p.path === "swarm.constraints[1]"), "the good constraint passes");
  });
  it("defaults: kiln's controller, spread, no constraints, the environment's manager and registry", () => {
    assert.deepEqual(ok(base).swarm, { rollouts: "kiln", insecureRegistry: false, constraints: [], spread: true });
  });
});
