// Argument rewrites main applies before commander parses.

/**
 * `kiln logs -f` follows, as `tail -f`, `docker logs -f` and `kubectl logs -f` do, although
 * `-f` is kiln's global short option for the kiln.yaml: after the verb `logs`, a bare `-f` is
 * `--follow` (the kiln.yaml is then given as `--file`). Everywhere else nothing changes.
 *
 *   ["logs", "-f"]                       → ["logs", "--follow"]
 *   ["logs", "-n", "5", "-f", "web-1"]   → ["logs", "-n", "5", "--follow", "web-1"]
 *   ["-f", "x.yaml", "logs", "-f"]       → ["-f", "x.yaml", "logs", "--follow"]
 *   ["deploy", "-f", "x.yaml"]           → unchanged
 *   ["logs", "--file", "x.yaml"]         → unchanged
 */
export function rewriteLogsFollow(args: string[], verb: string | undefined): string[] {
  if (verb !== "logs") return args;
  const at = args.indexOf("logs");
  return args.map((a, i) => (i > at && a === "-f" ? "--follow" : a));
}
