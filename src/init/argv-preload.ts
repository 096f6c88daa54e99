// What `kiln init` adds when a start script's arguments hold $PORT, ${HOST:-…} or a
// port kiln must choose: a preload (node --require) that expands ${NAME} and
// ${NAME:-default} in process.argv from the instance's environment before the
// app's own code runs. npm's shell did this for scripts.start; the image has no
// shell. The app (its main module, process.argv[1]) is unchanged: this is not a
// wrapper that replaces or re-launches it.

export const ARGV_PRELOAD_FILE = "kiln-argv.cjs";

export function argvPreloadSource(): string {
  return `// Written by \`kiln init\`: kiln images have no shell, so this preload (node --require) does the
// one thing npm's shell did for scripts.start: \${NAME} and \${NAME:-default} in the arguments
// become the instance's environment (kiln passes PORT; \${NAME:-default} uses the default when
// NAME is unset or empty). Nothing else is changed.
"use strict";
const pattern = /\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\\}/g;
for (let i = 2; i < process.argv.length; i++) {
  process.argv[i] = process.argv[i].replace(pattern, (_, name, fallback) => {
    const value = process.env[name];
    if (fallback !== undefined && (value === undefined || value === "")) return fallback;
    return value === undefined ? "" : value;
  });
}
`;
}
