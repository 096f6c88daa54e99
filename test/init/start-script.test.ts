// Start scripts → argv without a shell: one row per supported form and per refused form,
// the worked examples of src/init/start-script.ts. Pure: spawns nothing, reads no file.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseStartScript, translateStartScript, type CommandFact, type StartTranslation } from "../../src/init/start-script.js";

const JSON_SERVER: CommandFact = { file: "node_modules/json-server/lib/cli/bin.js", via: "node_modules/.bin/json-server", package: "json-server", node: true, readsPort: false };
const HTTP_SERVER: CommandFact = { file: "node_modules/http-server/bin/http-server", via: "node_modules/.bin/http-server", package: "http-server", node: true, readsPort: true, shebang: "#!/usr/bin/env node" };
const FASTIFY: CommandFact = { file: "node_modules/fastify-cli/cli.js", via: "node_modules/.bin/fastify", package: "fastify-cli", node: true, readsPort: true };
const NEXT: CommandFact = { file: "node_modules/next/dist/bin/next", via: "node_modules/.bin/next", package: "next", node: true, readsPort: true };
const SERVE: CommandFact = { file: "node_modules/serve/build/main.js", via: 'the "bin" of serve\'s package.json', package: "serve", node: true, readsPort: false };
const WWW: CommandFact = { file: "bin/www", via: "package.json scripts.start (./bin/www)", node: true, shebang: "#!/usr/bin/env node" };
const commands: Record<string, CommandFact> = {
  "json-server": JSON_SERVER,
  "http-server": HTTP_SERVER,
  fastify: FASTIFY,
  next: NEXT,
  serve: SERVE,
  "./bin/www": WWW,
  nodemon: { file: "node_modules/nodemon/bin/nodemon.js", via: "node_modules/.bin/nodemon", package: "nodemon", devOnly: true, node: true },
  "sh-tool": { file: "node_modules/sh-tool/run.sh", via: "node_modules/.bin/sh-tool", package: "sh-tool", node: false, shebang: "#!/bin/sh" },
};

type Expected = Partial<Omit<StartTranslation, "notes">> & { note?: RegExp };

// [script, expected translation]
const supported: [string, Expected][] = [
  ["node server.js", { nodeFlags: [], file: "server.js", args: [], env: {}, expands: false, port: undefined }],
  ["NODE_ENV=production node --enable-source-maps -r dotenv/config src/index.js", { nodeFlags: ["--enable-source-maps", "-r", "dotenv/config"], file: "src/index.js", env: { NODE_ENV: "production" } }],
  ["node ./src/../server.js --quiet", { file: "server.js", args: ["--quiet"] }],
  [`node "my server.js" 'a b'`, { file: "my server.js", args: ["a b"] }],
  ["json-server --port 3000 db.json", { file: JSON_SERVER.file, args: ["--port", "${PORT:-3000}", "db.json"], port: 3000, expands: true, package: "json-server", note: /--port 3000 → --port \$\{PORT:-3000\}/ }],
  ["json-server -p 4000 --host 127.0.0.1 db.json", { args: ["-p", "${PORT:-4000}", "--host", "127.0.0.1", "db.json"], port: 4000 }],
  ["json-server --port ${PORT:-3000} db.json", { args: ["--port", "${PORT:-3000}", "db.json"], port: 3000, expands: true }],
  [`json-server --port "$PORT" 'db.json'`, { args: ["--port", "${PORT}", "db.json"], port: undefined, expands: true }],
  ["node server.js --port=8081", { args: ["--port=${PORT:-8081}"], port: 8081, expands: true }],
  ["node server.js --listen=${HOST:-0.0.0.0}:${PORT:-5000}", { args: ["--listen=${HOST:-0.0.0.0}:${PORT:-5000}"], port: 5000, expands: true }],
  ["http-server public -c-1", { file: HTTP_SERVER.file, args: ["public", "-c-1"], expands: false, note: /http-server reads \$PORT itself/ }],
  ["fastify start -l info -a ${HOST:-127.0.0.1} -p $PORT app.js", { file: FASTIFY.file, args: ["start", "-l", "info", "-a", "${HOST:-127.0.0.1}", "-p", "${PORT}", "app.js"], expands: true }],
  ["PORT=4000 next start", { file: NEXT.file, args: ["start"], env: {}, port: 4000, note: /PORT=4000: not baked in/ }],
  ["npx serve -l ${PORT:-5000} dist", { file: SERVE.file, args: ["-l", "${PORT:-5000}", "dist"], port: 5000 }],
  ["json-server db.json", { args: ["db.json"], expands: false, note: /passes no port and json-server's code does not read \$PORT/ }],
  ["node server.js --db $DATABASE_URL", { args: ["--db", "${DATABASE_URL}"], note: /\$DATABASE_URL: kiln does not set it; declare it in kiln.yaml env/ }],
  ["./bin/www", { file: "bin/www", args: [], package: undefined }],
  ["node server.js # the API", { file: "server.js", args: [] }],
  ["node server.js --tag=a#b", { args: ["--tag=a#b"] }],
];

// [script, the exact token reported, its message]
const refused: [string, string, RegExp][] = [
  ["node a.js && node b.js", "&&", /runs a second command/],
  ["tsc; node dist/x.js", ";", /runs a second command/],
  ["node x.js || true", "||", /runs a second command/],
  ["node x.js &", "&", /runs a second command/],
  ["node x.js | pino-pretty", "|", /pipes into another command/],
  ["node x.js > out.log", ">", /redirects/],
  ["node x.js 2>&1", "2>&1", /redirects/],
  ["node x.js --port $(cat port)", "$(cat port)", /command substitution/],
  ["node x.js --port `cat port`", "`cat port`", /command substitution/],
  ['node x.js --port "$(cat port)"', "$(cat port)", /command substitution/],
  ["node x.js --port ${PORT:=3000}", "${PORT:=3000}", /only \$\{NAME\} and \$\{NAME:-default\}/],
  ["node x.js --port ${PORT:-$FALLBACK}", "${PORT:-$FALLBACK}", /only \$\{NAME\} and \$\{NAME:-default\}/],
  ["node x.js $1", "$1", /positional and special parameters/],
  ["node x.js $@", "$@", /positional and special parameters/],
  ["node dist/*.js", "dist/*.js", /a glob/],
  ["node ~/x.js", "~/x.js", /~ is expanded by the shell/],
  ["node 'x.js", "'x.js", /unclosed quote/],
  ["node x.js '${KEEP}'", "${KEEP}", /literal "\$\{" would be expanded/],
  ["DIR=$HOME node x.js", "DIR=${HOME}", /assignment from another variable/],
  ["$RUNNER start", "${RUNNER}", /the command itself comes from a variable/],
  ["node ../other/x.js", "../other/x.js", /outside the app/],
  ["node", "node", /node without a file/],
  ["nodemon x.js", "nodemon", /nodemon is a devDependency: `npm ci --omit=dev` leaves it out/],
  ["vite preview", "vite", /vite is not in node_modules\/\.bin nor a dependency's "bin": run `npm install` first/],
  ["./scripts/start.sh", "./scripts/start.sh", /not a file of the app/],
  ["sh-tool serve", "sh-tool", /is not a Node program \(#!\/bin\/sh\)/],
  ["npm run serve", "npm", /npm is not in the image \(only node is\)/],
];

describe("start scripts: supported forms", () => {
  for (const [script, want] of supported) {
    test(script, () => {
      const r = translateStartScript(script, commands);
      assert.ok(r.ok, `refused: ${JSON.stringify(!r.ok && r.problems)}`);
      const { note, ...fields } = want;
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(r.start[k as keyof StartTranslation], v, k);
      if (note) assert.ok(r.start.notes.some((n) => note.test(n)), `no note ${note} in ${JSON.stringify(r.start.notes)}`);
    });
  }
});

describe("start scripts: refused forms name the exact token", () => {
  for (const [script, token, message] of refused) {
    test(script, () => {
      const r = translateStartScript(script, commands);
      assert.ok(!r.ok, `translated: ${JSON.stringify(r.ok && r.start)}`);
      const p = r.problems.find((x) => x.token === token);
      assert.ok(p, `no problem for ${JSON.stringify(token)} in ${JSON.stringify(r.problems)}`);
      assert.match(p.message, message);
    });
  }

  test("every problem of a script is reported, not only the first", () => {
    const r = parseStartScript("tsc && node dist/*.js > log");
    assert.ok(!r.ok);
    assert.deepEqual(r.problems.map((p) => p.token), ["&&", "dist/*.js", ">"]);
  });
});

describe("shell words", () => {
  test("quotes, escapes and expansions become parts", () => {
    const r = parseStartScript(`A=1 B="x y" cmd --a="$PORT" --b='$PORT' c\\ d "\\$x"`);
    assert.ok(r.ok);
    assert.deepEqual(r.assignments, [
      { name: "A", value: [{ kind: "text", text: "1" }] },
      { name: "B", value: [{ kind: "text", text: "x y" }] },
    ]);
    assert.deepEqual(r.words, [
      [{ kind: "text", text: "cmd" }],
      [{ kind: "text", text: "--a=" }, { kind: "var", name: "PORT" }],
      [{ kind: "text", text: "--b=$PORT" }],
      [{ kind: "text", text: "c d" }],
      [{ kind: "text", text: "$x" }],
    ]);
  });
});
