// Dapr's flavour of the Durable Task JavaScript SDK (@dapr/durabletask-js
// from npm, pinned in package-lock.json) against a running `perdure serve`:
// the basic patterns a Dapr Workflow user writes (activity sequence,
// fan-out/fan-in, sub-orchestration, durable timer, external event with a
// timeout, continue-as-new, terminate, purge). Its protocol predates
// completion tokens, so completions are matched by instance and task id.
//
//   PERDURE_BIN=target/debug/perdure node tests/interop-js/dapr.mjs

import { TaskHubGrpcClient, TaskHubGrpcWorker } from "@dapr/durabletask-js";
import { whenAll, whenAny } from "@dapr/durabletask-js/task/index.js";
import { OrchestrationStatus as S } from "@dapr/durabletask-js/orchestration/enum/orchestration-status.enum.js";
import assert from "node:assert/strict";
import { serve, run } from "./support.mjs";

const plusOne = async (_ctx, n) => n + 1;
const sequence = async function* (ctx, n) {
  n = yield ctx.callActivity(plusOne, n);
  n = yield ctx.callActivity(plusOne, n);
  return n;
};
const fanOut = async function* (ctx, n) {
  const tasks = [];
  // From 1: this SDK sends a falsy input (0) as no input.
  for (let i = 1; i <= n; i++) tasks.push(ctx.callActivity(plusOne, i));
  const all = yield whenAll(tasks);
  return all.reduce((a, b) => a + b, 0);
};
const parent = async function* (ctx, n) {
  return yield ctx.callSubOrchestrator(sequence, n);
};
const sleeper = async function* (ctx) {
  yield ctx.createTimer(1);
  return "woke";
};
const eventOrTimeout = async function* (ctx) {
  const event = ctx.waitForExternalEvent("approve");
  const timeout = ctx.createTimer(30);
  const winner = yield whenAny([event, timeout]);
  return winner === event ? event.getResult() : "timed out";
};
const counter = async function* (ctx, n) {
  if (n < 3) {
    ctx.continueAsNew(n + 1, false);
    return;
  }
  return n;
};
const forever = async function* (ctx) {
  yield ctx.waitForExternalEvent("never");
};

const orchestrators = [sequence, fanOut, parent, sleeper, eventOrTimeout, counter, forever];

await run(async (test) => {
  const server = await serve("dapr");
  const worker = new TaskHubGrpcWorker(server.hostAddress);
  const c = new TaskHubGrpcClient(server.hostAddress);
  for (const o of orchestrators) worker.addOrchestrator(o);
  worker.addActivity(plusOne);
  await worker.start();
  const finish = async (id) => {
    const st = await c.waitForOrchestrationCompletion(id, true, 30);
    assert.ok(st, `instance ${id} has a state`);
    return st;
  };
  const completes = async (orchestrator, input, output) => {
    const st = await finish(await c.scheduleNewOrchestration(orchestrator, input));
    assert.equal(st.runtimeStatus, S.COMPLETED, st.failureDetails?.message);
    assert.equal(st.serializedOutput, output);
  };
  try {
    await test("an activity sequence completes", () => completes(sequence, 1, "3"));
    await test("fan-out/fan-in sums every activity", () => completes(fanOut, 10, "65"));
    await test("a sub-orchestration returns its result", () => completes(parent, 5, "7"));
    await test("a durable timer fires", () => completes(sleeper, undefined, JSON.stringify("woke")));
    await test("continue-as-new carries the input forward", () => completes(counter, 0, "3"));

    await test("an external event beats its timeout", async () => {
      const id = await c.scheduleNewOrchestration(eventOrTimeout);
      await c.waitForOrchestrationStart(id, false, 30);
      await c.raiseOrchestrationEvent(id, "approve", { ok: true });
      const st = await finish(id);
      assert.equal(st.runtimeStatus, S.COMPLETED, st.failureDetails?.message);
      assert.equal(st.serializedOutput, JSON.stringify({ ok: true }));
    });

    await test("terminate ends a waiting instance with its output", async () => {
      const id = await c.scheduleNewOrchestration(forever);
      await c.waitForOrchestrationStart(id, false, 30);
      await c.terminateOrchestration(id, "stopped");
      const st = await finish(id);
      assert.equal(st.runtimeStatus, S.TERMINATED);
      assert.equal(st.serializedOutput, JSON.stringify("stopped"));
    });

    await test("purge removes a finished instance", async () => {
      const id = await c.scheduleNewOrchestration(sequence, 1);
      await finish(id);
      const purged = await c.purgeOrchestration(id);
      assert.equal(purged?.deletedInstanceCount, 1);
      assert.equal(await c.getOrchestrationState(id), undefined);
    });
  } finally {
    await worker.stop().catch(() => {});
    await c.stop().catch(() => {});
    await server.stop();
  }
});
