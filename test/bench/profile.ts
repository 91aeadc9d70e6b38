/**
 * Summarise a V8 CPU profile (`node --cpu-prof`, e.g. of the Node-RED process of test/bench/flow.ts with
 * `MLC_BENCH_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof"`): the share of sampled time per function (self time)
 * and per package or area (self time of every function whose script lives there), largest first. Shares, not
 * milliseconds, are what stay comparable on a loaded machine.
 *
 * Usage: `node dist/test/bench/profile.js <file.cpuprofile> [top=25]`. Format: the DevTools Profile object
 * (https://chromedevtools.github.io/devtools-protocol/tot/Profiler/#type-Profile).
 */
import fs from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The area a script belongs to: "ml-connector/<path>", an npm package name, "node:<module>", or "(vm)". */
export function areaOf(url: string): string {
  if (!url) return "(native/vm)";
  if (url.startsWith("node:")) return url;
  const mlc = /node-red-contrib-ml-connector\/dist\/(.*)$/.exec(url);
  if (mlc) return `ml-connector/${mlc[1]}`;
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  return url.replace(/^file:\/\//, "");
}

/** Self time per function and per area, µs. */
export function summarise(p: Profile): { total: number; byFn: Map<string, number>; byArea: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const area = areaOf(f.url);
    const name = `${f.functionName || "(anonymous)"} ${area}:${f.lineNumber + 1}`;
    byFn.set(name, (byFn.get(name) ?? 0) + us);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  return { total, byFn, byArea };
}

function top(m: Map<string, number>, n: number, total: number): string {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `  ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`)
    .join("\n");
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node dist/test/bench/profile.js <file.cpuprofile> [top]\n");
    process.exitCode = 2;
  } else {
    const n = Number(process.argv[3]) || 25;
    const s = summarise(JSON.parse(fs.readFileSync(file, "utf8")) as Profile);
    process.stdout.write(`${file}: ${(s.total / 1000).toFixed(0)} ms sampled\nby area (self time):\n${top(s.byArea, n, s.total)}\nby function (self time):\n${top(s.byFn, n, s.total)}\n`);
  }
}
