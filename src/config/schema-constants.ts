// The words and limits kiln.yaml's schema is made of (schema.ts), kept apart from it so that
// run-time code (load.ts, problems.ts, duration.ts) uses them without loading TypeBox.

import { MEMORY_PATTERN } from "./resources.js";

export const API_VERSION = "kiln/v1";

// Patterns are named so that load.ts can say in words what they mean (PATTERN_TEXT).
export const PATTERNS = {
  name: "^[a-z][a-z0-9-]{0,62}$",
  version: "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
  base: "^(node|node@[0-9]+|node@file:.+|oci:.+|docker-archive:.+)$",
  absolutePath: "^/",
  urlPath: "^/\\S*$",
  user: "^[0-9]+(:[0-9]+)?$",
  listen: "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
  volumeName: "^[a-z][a-z0-9-]*$",
  envName: "^[A-Za-z_][A-Za-z0-9_]*$",
  mode: "^[0-7]{3,4}$",
  duration: "^\\d+(\\.\\d+)?(ms|s|m|h)$",
  nonEmpty: "^.+$",
  postgresUrl: "^postgres(ql)?://",
  swarmConstraint: "^(node\\.(id|hostname|role|platform\\.os|platform\\.arch|labels\\.[A-Za-z0-9_.-]+)|engine\\.labels\\.[A-Za-z0-9_.-]+)\\s*(==|!=)\\s*\\S+$",
  swarmRegistry: "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$",
  environmentName: "^[a-z][a-z0-9-]{0,30}$",
} as const;

export const PATTERN_TEXT: Readonly<Record<string, string>> = {
  [PATTERNS.name]:
    'a name of lowercase letters, digits and "-", starting with a letter, at most 63 characters',
  [PATTERNS.version]:
    'a tag-safe version of letters, digits, "_", "." and "-", not starting with "." or "-", at most 128 characters',
  [PATTERNS.base]: '"node", "node@LINE" (e.g. node@24), "node@file:PATH", "oci:PATH[:TAG]" or "docker-archive:PATH"',
  [PATTERNS.absolutePath]: 'an absolute path (starting with "/")',
  [PATTERNS.urlPath]: 'a URL path starting with "/"',
  [PATTERNS.user]: 'a numeric "UID:GID" (or "UID"), e.g. "1000:1000"',
  [PATTERNS.listen]: 'an address "host:port", e.g. "127.0.0.1:8080"',
  [PATTERNS.volumeName]: 'a name of lowercase letters, digits and "-", starting with a letter',
  [PATTERNS.envName]: 'an environment variable name (letters, digits and "_", not starting with a digit)',
  [PATTERNS.mode]: 'an octal mode string like "0755"',
  [PATTERNS.duration]: 'a duration like "500ms", "30s", "5m", "1h" or a number of seconds',
  [PATTERNS.nonEmpty]: "a non-empty string",
  [PATTERNS.postgresUrl]: 'a PostgreSQL URL "postgres://[user@]host[:port]/database[?schema=NAME]"',
  [PATTERNS.swarmConstraint]:
    'a Swarm placement constraint "ATTRIBUTE==VALUE" or "ATTRIBUTE!=VALUE" on node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY or engine.labels.KEY',
  [PATTERNS.swarmRegistry]: 'a registry "HOST[:PORT]" with an optional repository prefix, e.g. "10.77.0.1:5000" or "ghcr.io/acme"',
  [MEMORY_PATTERN]: 'a memory size like "256Mi", "1.5Gi", "512M" or a number of bytes',
  [PATTERNS.environmentName]: 'an environment name of lowercase letters, digits and "-", starting with a letter (at most 31)',
};

// Titles mark the two composite types so error messages can name them as a whole
// instead of listing why each anyOf branch failed.
export const DURATION_TITLE = "Duration";

/**
 * The longest duration kiln.yaml may hold: Node's timers hold at most 2^31−1 ms
 * (~24.8 days); a longer one fires after 1 ms instead, so `timeout: 99999h`
 * would silently become "at once". Strings are checked in load.ts.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;
export const MAX_DURATION_SECONDS = Math.floor(MAX_DURATION_MS / 1000);
/** Counts without a natural limit get this one: beyond it a value is a typo, not a plan. */
export const MAX_COUNT = 1_000_000;
export const FILE_ENTRY_TITLE = "FileEntry";

/**
 * What one environment may override. Values are checked after they are merged over the rest of
 * kiln.yaml (load.ts validates each environment's effective file with this same schema), so each
 * key here only says what it may hold in words.
 */
export const ENVIRONMENT_KEYS = ["instances", "listen", "provider", "router", "env", "strategy", "secrets"] as const;
