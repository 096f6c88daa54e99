// `kiln demo --router haproxy`: the same nine steps with HAProxy as the data plane.

process.env.KILN_DEMO_ROUTER = "haproxy";
await import("./demo.test.js");
