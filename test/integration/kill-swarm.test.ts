// The kill test on the three-node swarm: the controller is SIGKILLed at random moments while it
// drives one Swarm service per instance (provider swarm); every rollout converges with 0 failed
// requests and every running service is one state knows. Same rollouts, same assertions as
// kill.test.ts (KILN_KILL_COUNT kills, 30 by default). Skips unless the rig's env is set.

process.env.KILN_KILL_PROVIDER = "swarm";
await import("./kill.test.js");
