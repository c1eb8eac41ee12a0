// V8's flags the executable starts with (the SEA's `execArgv`). `NODE_OPTIONS` can add others, but it cannot
// change these: Node reads `NODE_OPTIONS` first and the executable's own flags after it.
//
// `--max-semi-space-size=8` caps each of V8's two young-generation semi-spaces at 8 MiB. V8 otherwise sizes
// them from the machine's memory: 64 MiB each on a machine with 24 GB, where the young generation commits
// 128 MiB once device connections or traffic have grown it. Capped, a gateway keeps about the same young
// generation on every machine: with 10,000 idle device connections it holds about 90 MB less; its scavenges
// come four to seven times as often, most of them shorter, for about 2% more CPU at 20,000 events/s (docs/benchmarks.md,
// "The young generation capped"). 4 MiB cost more CPU and major collections; 2 MiB saved little more memory.
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
