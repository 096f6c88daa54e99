// The kill test on the three-node swarm: the controller is SIGKILLed at random moments while it
// drives one Swarm service per instance (provider swarm); every rollout converges with 0 failed
// requests and every running service is one state knows. Same rollouts, same assertions as
// kill.test.ts. 9 kills by default, three per rollout, so each strategy takes kills (KILN_KILL_SWARM_COUNT;
// 30 passed in 5.0 min on 2026-12-03,
// 0 failed requests), so CI keeps under 45 minutes. Skips unless the rig's env is set.

process.env.KILN_KILL_PROVIDER = "swarm";
process.env.KILN_KILL_COUNT = process.env.KILN_KILL_SWARM_COUNT ?? "9";
await import("./kill.test.js");
