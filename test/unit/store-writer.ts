/**
 * Child process for the crash test in store.test.ts: opens the durable store the way Node-RED does
 * (module(config) → open()), writes `count` values through the context-store `set` with up to
 * `inFlight` writes outstanding, and prints "ack <i>" once each set callback fired. The parent kills it
 * with SIGKILL part-way and checks that every acknowledged value is there after reopening.
 *
 * Usage: node store-writer.js <dir> <count> <inFlight> [durability]
 */
import mlcStore = require("../../nodes/store");

const [dir, countArg, inFlightArg, durability] = process.argv.slice(2);
const count = Number(countArg);
const inFlight = Number(inFlightArg);
const store = mlcStore({ dir, durability: durability === "commit" ? "commit" : "flush" });

store.open().then(
  () => {
    let next = 0;
    const writeOne = (): void => {
      if (next >= count) return;
      const i = next++;
      // A nested path on every 10th write exercises the read-modify-write of a row.
      const key = i % 10 === 9 ? `nested.k${i}` : `k${i}`;
      store.set("writer:flow", key, { i, body: "x".repeat(200) }, (err) => {
        if (err) {
          process.stderr.write(`set ${i} failed: ${err.message}\n`);
          process.exit(2);
        }
        process.stdout.write(`ack ${i}\n`);
        writeOne();
      });
    };
    for (let k = 0; k < inFlight; k++) writeOne();
    process.stdout.write("started\n");
  },
  (err: Error) => {
    process.stderr.write(`open failed: ${err.message}\n`);
    process.exit(3);
  },
);
