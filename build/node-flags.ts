// V8's flags the executable starts with (the SEA's `execArgv`). `NODE_OPTIONS` can add others, but it cannot
// change these: Node reads `NODE_OPTIONS` first and the executable's own flags after it.
//
// `--max-semi-space-size=4` caps each of V8's two young-generation semi-spaces at 4 MiB. V8 otherwise sizes
// them from the machine's memory: 64 MiB each on a machine with 24 GB, where the young generation commits
// 128 MiB once device connections or traffic have grown it. Capped, a gateway keeps the same young generation
// on every machine, the one the churn benchmark measures a 512 MB gateway with: with 10,000 idle device
// connections it holds about 90 MB less, and its scavenges come more often but each ends sooner
// (docs/benchmarks.md, "The young generation capped").
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
