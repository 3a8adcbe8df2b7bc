// The official Durable Task JavaScript SDK (@microsoft/durabletask-js from
// npm, pinned in package-lock.json) against a running `perdure serve` on a
// fresh SQLite file: an activity sequence, tags round-trip, a start without
// input has none, event data comes back as written, and the `taskhub`
// header keeps hubs apart.
//
//   PERDURE_BIN=target/debug/perdure node tests/interop-js/test.mjs

import { TaskHubGrpcClient, TaskHubGrpcWorker, ProtoOrchestrationStatus as S } from "@microsoft/durabletask-js";
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import assert from "node:assert/strict";

const BIN = process.env.PERDURE_BIN || "target/debug/perdure";

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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

const quiet = { info() {}, warn() {}, debug() {}, error(...a) { console.error(...a); } };

function hub(name) {
  return async () => {
    const m = new grpc.Metadata();
    if (name) m.set("taskhub", name);
    return m;
  };
}

const dir = mkdtempSync(join(tmpdir(), "perdure-js-"));
const port = await freePort();
const server = spawn(BIN, ["serve", "--store", `sqlite://${join(dir, "js.db")}`, "--grpc", `127.0.0.1:${port}`, "--http", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "inherit"] });
const hostAddress = `localhost:${port}`;
const made = [];
const client = (name) => { const c = new TaskHubGrpcClient({ hostAddress, metadataGenerator: hub(name), logger: quiet }); made.push(c); return c; };

const plusOne = async (_ctx, n) => n + 1;
const sequence = async function* (ctx, n) {
  n = yield ctx.callActivity(plusOne, n);
  n = yield ctx.callActivity(plusOne, n);
  return n;
};
const echoEvent = async function* (ctx) {
  return yield ctx.waitForExternalEvent("data");
};
const inputIsNone = async (_ctx, input) => input === undefined || input === null;
const done = async (_ctx) => "done";

const results = [];
async function test(name, f) {
  try {
    await f();
    results.push([name, "ok"]);
  } catch (e) {
    results.push([name, `FAILED: ${e.stack || e}`]);
  }
}

try {
  await listening(port);
  const worker = new TaskHubGrpcWorker({ hostAddress, logger: quiet });
  for (const o of [sequence, echoEvent, inputIsNone, done]) worker.addOrchestrator(o);
  worker.addActivity(plusOne);
  await worker.start();
  const c = client(null);

  await test("an activity sequence completes", async () => {
    const id = await c.scheduleNewOrchestration(sequence, 1);
    const st = await c.waitForOrchestrationCompletion(id, true, 30);
    assert.equal(st?.runtimeStatus, S.ORCHESTRATION_STATUS_COMPLETED, st?.failureDetails?.message);
    assert.equal(st.serializedOutput, "3");
  });

  await test("tags round-trip", async () => {
    const tags = { env: "test", owner: "durable" };
    const id = await c.scheduleNewOrchestration(done, undefined, { tags });
    const st = await c.waitForOrchestrationCompletion(id, true, 30);
    assert.equal(st?.runtimeStatus, S.ORCHESTRATION_STATUS_COMPLETED);
    assert.deepEqual(st.tags, tags);
  });

  await test("a start without input has none", async () => {
    const id = await c.scheduleNewOrchestration(inputIsNone);
    const st = await c.waitForOrchestrationCompletion(id, true, 30);
    assert.equal(st?.runtimeStatus, S.ORCHESTRATION_STATUS_COMPLETED, st?.failureDetails?.message);
    assert.equal(st.serializedOutput, "true");
    assert.equal(st.serializedInput ?? "", "");
  });

  await test("event data comes back as written", async () => {
    const data = { z: 1, big: "12345678901234567890123", a: [0.5, 2] };
    const id = await c.scheduleNewOrchestration(echoEvent);
    await c.raiseOrchestrationEvent(id, "data", data);
    const st = await c.waitForOrchestrationCompletion(id, true, 30);
    assert.equal(st?.runtimeStatus, S.ORCHESTRATION_STATUS_COMPLETED);
    assert.equal(st.serializedOutput, JSON.stringify(data));
  });

  await test("the taskhub header keeps hubs apart", async () => {
    const orders = client("orders");
    const id = await orders.scheduleNewOrchestration("NobodyServesThis", 1, "js-hub-1");
    assert.ok(await orders.getOrchestrationState(id), "seen on its hub");
    assert.equal(await c.getOrchestrationState(id), undefined, "not seen on the default hub");
  });

  await worker.stop();
} finally {
  for (const c of made) await c.stop().catch(() => {});
  server.kill("SIGTERM");
  await sleep(200);
  rmSync(dir, { recursive: true, force: true });
}

for (const [name, r] of results) console.log(`${r === "ok" ? "ok  " : "FAIL"} ${name}${r === "ok" ? "" : "\n" + r}`);
const failed = results.filter(([, r]) => r !== "ok").length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
