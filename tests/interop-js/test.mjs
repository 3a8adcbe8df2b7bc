// The official Durable Task JavaScript SDK (@microsoft/durabletask-js from
// npm, pinned in package-lock.json) against a running `perdure serve` on a
// fresh SQLite file: an activity sequence, tags round-trip, a start without
// input has none, event data comes back as written, and the `taskhub`
// header keeps hubs apart.
//
//   PERDURE_BIN=target/debug/perdure node tests/interop-js/test.mjs

import { TaskHubGrpcClient, TaskHubGrpcWorker, ProtoOrchestrationStatus as S } from "@microsoft/durabletask-js";
import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { serve, run } from "./support.mjs";

const quiet = { info() {}, warn() {}, debug() {}, error(...a) { console.error(...a); } };

function hub(name) {
  return async () => {
    const m = new grpc.Metadata();
    if (name) m.set("taskhub", name);
    return m;
  };
}


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

await run(async (test) => {
  const server = await serve("js");
  const { hostAddress } = server;
  const made = [];
  const client = (name) => { const c = new TaskHubGrpcClient({ hostAddress, metadataGenerator: hub(name), logger: quiet }); made.push(c); return c; };
  try {
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
    await server.stop();
  }
});
