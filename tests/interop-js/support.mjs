// What the JavaScript interop tests share: a `perdure serve` on a fresh
// SQLite file and a free port, and a runner that reports one line per named
// behaviour and exits non-zero when any failed.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

const BIN = process.env.PERDURE_BIN || "target/debug/perdure";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function listening(port) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, "127.0.0.1", () => { c.end(); resolve(true); });
      c.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error("perdure serve did not listen");
    await sleep(50);
  }
}

// Starts `perdure serve` and resolves to { hostAddress, stop }.
export async function serve(label) {
  const dir = mkdtempSync(join(tmpdir(), `perdure-${label}-`));
  const port = await freePort();
  const server = spawn(BIN, ["serve", "--store", `sqlite://${join(dir, "js.db")}`, "--grpc", `127.0.0.1:${port}`, "--http", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "inherit"] });
  await listening(port);
  return {
    hostAddress: `localhost:${port}`,
    async stop() {
      server.kill("SIGTERM");
      await sleep(200);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Runs `body(test)`, where `test(name, f)` records one behaviour; then
// prints the results and exits.
export async function run(body) {
  const results = [];
  const test = async (name, f) => {
    try {
      await f();
      results.push([name, "ok"]);
    } catch (e) {
      results.push([name, `FAILED: ${e.stack || e}`]);
    }
  };
  try {
    await body(test);
  } catch (e) {
    results.push(["setup", `FAILED: ${e.stack || e}`]);
  }
  for (const [name, r] of results) console.log(`${r === "ok" ? "ok  " : "FAIL"} ${name}${r === "ok" ? "" : "\n" + r}`);
  const failed = results.filter(([, r]) => r !== "ok").length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
