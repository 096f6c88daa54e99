import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";
import { chooseProvider, chooseRouter, startDaemons, stopDaemons } from "../../ops/daemons.js";
import { checkLocalUidRange, probeLocalSandbox } from "../../providers/registry.js";

export function register(program: Command): void {
  program
    .command("up")
    .description("start the proxy (data plane) and the controller (control plane), under a supervisor that restarts the controller after a crash")
    .option("-d, --detach", "return once both are up, leaving them running in the background")
    .option("--provider <name>", "what runs the instances: local (processes in bubblewrap), docker (containers) or swarm (one Swarm service per instance, kiln.yaml `swarm`); default: the one already running, else kiln.yaml's provider")
    .option("--router <kind>", "the data plane: builtin (kiln's proxy) or haproxy (the system's HAProxy); default: the one already running, else kiln.yaml's router")
    .option("--sandbox <mode>", "local provider's instance sandbox: bwrap (bubblewrap with a seccomp filter and no nested user namespaces; required) or none (= --unsafe-no-sandbox)", "auto")
    .option("--unsafe-no-sandbox", "run local instances WITHOUT isolation (a chroot as the image user; root only) when bubblewrap is missing or too old")
    .option("--json", "print the process ids as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  kiln up --detach                    # start in the background, then `kiln deploy`\n  kiln up --detach --provider docker  # instances are containers on $DOCKER_HOST\n  kiln up --detach --router haproxy   # HAProxy serves the fleet\n  kiln up                             # stay in the foreground; Ctrl-C stops everything\n  kiln up --detach --env production   # one environment's own proxy, controller and fleet",
    )
    .action(async (opts: { detach?: boolean; provider?: string; router?: string; sandbox: string; unsafeNoSandbox?: boolean; json?: boolean }, cmd: Command) => {
      if (!["auto", "bwrap", "none"].includes(opts.sandbox)) throw new KilnError("KILN_E_USAGE", `--sandbox ${opts.sandbox}: expected bwrap or none`, { hint: "bwrap is the default; none runs instances unisolated" });
      const sandbox = opts.unsafeNoSandbox ? "none" : opts.sandbox;
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const provider = chooseProvider({ flag: opts.provider, paths: ctx.paths, spec: ctx.loaded.spec.provider });
      if (provider === "local") {
        checkSandbox(sandbox);
        checkLocalUidRange(); // issue 12: kiln's uid range is used by no host account
      }
      const router = chooseRouter({ flag: opts.router, paths: ctx.paths, spec: ctx.loaded.spec.router });
      const spec = ctx.loaded.spec;
      // The controller signs webhooks with keys from its environment, which is this one's.
      const missing = spec.notify.webhooks.filter((w) => w.secretEnv !== undefined && !process.env[w.secretEnv]);
      if (missing.length) {
        throw new KilnError("KILN_E_USAGE", `notify.webhooks: ${missing.map((w) => `${w.secretEnv} (for ${w.url})`).join(", ")} ${missing.length === 1 ? "is" : "are"} not set in this environment`, {
          hint: "export the signing key before `kiln up` (the controller inherits it); it never goes in kiln.yaml",
        });
      }
      const r = await startDaemons({ paths: ctx.paths, specFile: ctx.loaded.file, environment: ctx.loaded.environment, listen: spec.listen, previewListen: spec.strategy.blueGreen.previewListen, home: ctx.home, provider, sandbox, router, edge: spec.edge, health: spec.health, swarm: spec.swarm, service: ctx.loaded.service });
      if (opts.json) printJson({ environment: ctx.loaded.environment ?? null, proxy: { pid: r.proxyPid, address: spec.listen }, router, controller: { pid: r.controllerPid }, supervisor: { pid: r.supervisorPid }, provider, alreadyUp: r.alreadyUp });
      else out(`${r.alreadyUp ? "already up" : "up"}${ctx.loaded.environment ? ` (${ctx.loaded.environment})` : ""}: ${router === "haproxy" ? "HAProxy" : "proxy"} ${r.proxyPid} on http://${spec.listen}, controller ${r.controllerPid} (restarted after a crash by supervisor ${r.supervisorPid}), provider ${provider}, router ${router}`);
      if (opts.detach) return;
      if (!opts.json) out("foreground: Ctrl-C stops the fleet, the controller and the proxy");
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      const d = await stopDaemons({ paths: ctx.paths, home: ctx.home, service: ctx.loaded.service, provider, swarm: ctx.loaded.spec.swarm, sharedEdge: ctx.loaded.spec.edge.hosts.length > 0 });
      out(`stopped: ${d.stopped.join(", ") || "nothing"}`);
    });

  program
    .command("down")
    .description("stop every instance, the controller (and its supervisor) and the proxy; leaves no process behind")
    .option("--provider <name>", "whose leftover instances to clean when kiln does not remember (default: the one `kiln up` used, else kiln.yaml's)")
    .option("--json", "print what was stopped as JSON")
    .addHelpText("after", "\nExample:\n  kiln down")
    .action(async (opts: { json?: boolean; provider?: string }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const provider = chooseProvider({ flag: opts.provider, paths: ctx.paths, spec: ctx.loaded.spec.provider });
      const d = await stopDaemons({ paths: ctx.paths, home: ctx.home, service: ctx.loaded.service, provider, swarm: ctx.loaded.spec.swarm, sharedEdge: ctx.loaded.spec.edge.hosts.length > 0 });
      if (d.controllerShutdownFailed !== undefined) process.stderr.write(`warning: the controller could not finish its shutdown (${d.controllerShutdownFailed}); it and its instances were stopped directly\n`);
      if (opts.json) printJson(d);
      else out(`stopped: ${d.stopped.join(", ") || "nothing was running"}`);
    });
}

/** Said at `kiln up`, before anything starts: the local provider refuses to launch without a sandbox that holds. */
function checkSandbox(sandbox: string): void {
  if (sandbox === "none") {
    process.stderr.write("WARNING: --unsafe-no-sandbox: local instances run WITHOUT isolation (no namespaces, no seccomp filter; a chroot as the image user)\n");
    return;
  }
  const found = probeLocalSandbox();
  if (!found)
    throw new KilnError("KILN_E_PROVIDER", "bubblewrap (bwrap) is not installed: local instances cannot be sandboxed", {
      hint: "install it (Debian: apt-get install bubblewrap); to run them unisolated anyway: kiln up --unsafe-no-sandbox",
    });
  if (found.missing.length > 0)
    throw new KilnError("KILN_E_PROVIDER", `${found.path} is too old: it lacks ${found.missing.join(", ")}`, {
      hint: "install bubblewrap 0.8 or later; to run instances unisolated anyway: kiln up --unsafe-no-sandbox",
    });
}
