// Entry of the supervisor process `kiln up` starts (see supervisor.ts). Usage:
//   supervisor-main.js SOCKET CONTROLLER_PID_FILE LOG_FILE -- CONTROLLER_SCRIPT ARG...
import { supervise } from "./supervisor.js";

// stdout and stderr are the log file: a write that fails there (a full disk) must not end the supervisor.
for (const s of [process.stdout, process.stderr]) s.on("error", () => undefined);

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
const [socketPath, controllerPidFile, logFile] = argv;
if (sep !== 3 || !socketPath || !controllerPidFile || !logFile || argv.length < 5) {
  process.stderr.write("usage: supervisor-main.js SOCKET CONTROLLER_PID_FILE LOG_FILE -- CONTROLLER_SCRIPT ARG...\n");
  process.exit(2);
}
const [script, ...args] = argv.slice(sep + 1);
supervise({ socketPath, controllerPidFile, logFile, script: script!, args }).then((code) => process.exit(code));
