import assert from "node:assert/strict";
import { test } from "node:test";
import { detectSecrets, isSecretCandidateName, secretEnvNames } from "../../src/audit/secrets.js";
import { parseSmoke } from "../../src/audit/exercise.js";
import { listeningPorts, parseProcNetTcp } from "../../src/audit/procfs.js";
import { KilnError } from "../../src/errors.js";

const KEY_BODY = "VGhpcyBpcyBub3QgYSByZWFsIGtleQ==";

test("secret detection by path and content, never returning the secret", () => {
  const cases: { path: string; text: string; want: string[] }[] = [
    { path: "/app/deploy_key", text: `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n`, want: ["private-key:1:OPENSSH private key"] },
    { path: "/etc/ssl/x.pem", text: `cert\n-----BEGIN RSA PRIVATE KEY-----\n${KEY_BODY}\n`, want: ["private-key:2:RSA private key"] },
    { path: "/a/key.pem", text: `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}`, want: ["private-key:1:private key"] },
    { path: "/a/k.asc", text: `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${KEY_BODY}`, want: ["private-key:1:PGP private key"] },
    { path: "/a/cert.pem", text: "-----BEGIN CERTIFICATE-----\nMIIB\n", want: [] },
    { path: "/a/pub", text: "-----BEGIN PUBLIC KEY-----\nMIIB\n", want: [] },
    { path: "/app/.env", text: "PORT=80\n# DB_PASSWORD=old\nSESSION_SECRET=hunter2\nexport API_TOKEN='abc'\n", want: ["dotenv-secret:3:SESSION_SECRET, API_TOKEN"] },
    { path: "/app/.env.production", text: "STRIPE_KEY=sk_live_x\n", want: ["dotenv-secret:1:STRIPE_KEY"] },
    { path: "/app/.env", text: "API_TOKEN=\nDB_PASSWORD=${DB_PASSWORD}\nPORT=1\n", want: [] },
    { path: "/app/.env.example", text: "API_TOKEN=changeme\n", want: [] },
    { path: "/root/.aws/credentials", text: "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = abc\n", want: ["aws-credentials:3:aws_secret_access_key"] },
    { path: "/root/.aws/credentials", text: "[default]\naws_access_key_id = AKIAEXAMPLE\n", want: ["aws-credentials:-:aws_access_key_id"] },
    { path: "/app/.npmrc", text: "registry=https://r\n//registry.npmjs.org/:_authToken=npm_abc\n", want: ["npm-token:2:_authToken"] },
    { path: "/app/.npmrc", text: "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n", want: [] },
    { path: "/root/.git-credentials", text: "https://me:ghp_abc@github.com\n", want: ["git-credentials:1:URL with a password"] },
    { path: "/root/.pgpass", text: "# h:p:d:u:pw\ndb:5432:app:app:pw\n", want: ["pgpass:2:host:port:db:user:password entry"] },
    { path: "/root/.netrc", text: "machine x login me password pw\n", want: ["netrc-password:1:machine password"] },
    { path: "/root/.docker/config.json", text: '{"auths":{"r":{"auth":"bWU6cHc="}}}', want: ["docker-auth:1:registry auth"] },
    { path: "/app/README.md", text: "set API_TOKEN=abc in .env", want: [] },
  ];
  for (const c of cases) {
    const hits = detectSecrets(c.path, c.text);
    assert.deepEqual(hits.map((h) => `${h.kind}:${h.line ?? "-"}:${h.what}`), c.want, c.path);
    for (const h of hits) for (const secret of ["hunter2", "sk_live_x", "npm_abc", "ghp_abc", KEY_BODY, "bWU6cHc="]) assert.ok(!h.what.includes(secret), `${c.path} leaks`);
  }
});

test("which names are read regardless of size", () => {
  for (const p of ["/app/.env", "/x/.env.local", "/app/prod.env", "/root/.npmrc", "/root/.aws/credentials", "/root/.docker/config.json", "/root/.pgpass"]) assert.ok(isSecretCandidateName(p), p);
  for (const p of ["/app/.env.example", "/etc/credentials", "/app/config.json", "/app/server.js"]) assert.ok(!isSecretCandidateName(p), p);
});

test("secret-looking image env", () => {
  assert.deepEqual(secretEnvNames(["NODE_ENV=production", "API_KEY=abc", "DB_PASSWORD=", "GPG_KEY=ABCDEF", "GITHUB_TOKEN=${T}", "AWS_SECRET_ACCESS_KEY=x", "KEYBOARD=us"]), ["API_KEY", "AWS_SECRET_ACCESS_KEY"]);
});

test("smoke files: requests with bodies, comments, and every bad line reported", () => {
  assert.deepEqual(parseSmoke('# c\nGET /\n\npost /notes {"text": "hi"}\nDELETE /notes/1\n', "s.txt"), [
    { method: "GET", path: "/", where: "s.txt:2" },
    { method: "POST", path: "/notes", body: '{"text": "hi"}', where: "s.txt:4" },
    { method: "DELETE", path: "/notes/1", where: "s.txt:5" },
  ]);
  assert.throws(
    () => parseSmoke("GET /\nFETCH /x\nGET notes\nGET\n", "s.txt"),
    (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && e.exitCode === 2 && e.details.map((d) => d.where).join(",") === "s.txt:2,s.txt:3,s.txt:4",
  );
});

test("/proc/net/tcp: listening ports of the instance's own sockets only", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000 100 0 0 10 0",
    "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1 0000 100 0 0 10 0",
    "   2: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000 100 0 0 10 0",
    "",
  ].join("\n");
  const sockets = parseProcNetTcp(text);
  assert.deepEqual(sockets.map((s) => [s.localPort, s.state, s.inode]), [[22, 10, 111], [8080, 10, 222], [8080, 1, 333]]);
  assert.deepEqual(listeningPorts(sockets, new Set([222, 333])), [8080]); // the host's sshd (inode 111) is not the instance's
  assert.deepEqual(listeningPorts(sockets, new Set([111])), [22]);
});
