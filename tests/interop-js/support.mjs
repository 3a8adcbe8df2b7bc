// What the JavaScript interop tests share: a `perdure serve` on a fresh
// SQLite file on ports it chooses, and a runner that reports one line per named
// behaviour and exits non-zero when any failed.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = process.env.PERDURE_BIN || "target/debug/perdure";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves to the gRPC port `perdure serve` took, read from its startup
// line on stderr (which is passed on to ours).
function listening(server) {
  return new Promise((resolve, reject) => {
    let seen = "";
    let found = false;
    const timer = setTimeout(() => reject(new Error("perdure serve did not listen")), 30000);
    server.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      if (found) return;
      seen += chunk.toString();
      const m = seen.match(/gRPC on 127\.0\.0\.1:(\d+) /);
      if (m) { found = true; clearTimeout(timer); resolve(Number(m[1])); }
    });
    server.on("exit", (code) => { clearTimeout(timer); reject(new Error(`perdure serve exited (${code}) before it listened`)); });
  });
}

// Starts `perdure serve` on ports of its own choosing (port 0: nothing can
// take them between a choice and the bind) and resolves to
// { hostAddress, stop }.
export async function serve(label) {
  const dir = mkdtempSync(join(tmpdir(), `perdure-${label}-`));
  const server = spawn(BIN, ["serve", "--store", `sqlite://${join(dir, "js.db")}`, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
  const port = await listening(server);
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
