// The dashboard as a user drives it: a real headless Chromium (Debian's,
// driven by playwright-core) against a running `perdure serve --samples` on
// a fresh SQLite file. It lists instances, filters them, pages, opens one
// and reads its timeline and history, follows parent and child links, and
// raises an event to a waiting approval and watches it complete, repairs a
// stuck approval (fires its timer) with who and why recorded, and shows
// hostile ids, names, inputs, outputs, custom status, failure messages and
// event names as text (no markup, no script).
//
//   PERDURE_BIN=target/debug/perdure node tests/dashboard/test.mjs
//   (CHROMIUM=/path/to/chromium; SCREENSHOT=docs/dashboard.png saves one)

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const BIN = process.env.PERDURE_BIN || "target/debug/perdure";
const CHROME = process.env.CHROMIUM || "/usr/bin/chromium";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, f, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const dir = mkdtempSync(join(tmpdir(), "perdure-dashboard-"));
// Port 0: the server takes free ports itself and names them in its first
// line on stderr (passed on to ours).
const server = spawn(BIN, ["serve", "--samples", "--store", `sqlite://${join(dir, "d.db")}`,
  "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
const http = await new Promise((resolve, reject) => {
  let seen = "";
  let found = false;
  server.stderr.on("data", (chunk) => {
    process.stderr.write(chunk);
    if (found) return;
    seen += chunk.toString();
    const m = seen.match(/HTTP API on http:\/\/127\.0\.0\.1:(\d+)\//);
    if (m) { found = true; resolve(Number(m[1])); }
  });
  server.on("exit", (code) => reject(new Error(`perdure serve exited (${code}) before it listened`)));
});
const base = `http://127.0.0.1:${http}`;
const api = `${base}/runtime/webhooks/durabletask`;
let browser;

async function start(name, input) {
  const r = await fetch(`${api}/orchestrators/${name}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(input),
  });
  assert.equal(r.status, 202, `starting ${name}`);
  return (await r.json()).id;
}

async function status(id) {
  const r = await fetch(`${api}/instances/${id}`);
  return (await r.json()).runtimeStatus;
}

try {
  await until("the server", async () => {
    try { return (await fetch(`${base}/metrics`)).ok; } catch (_) { return false; }
  });
  const hello = await start("HelloCities", null);
  const approval = await start("ApprovalWorkflow", { request: "dashboard test", timeout_secs: 3600 });
  // A parent with 30 children: more instances than one page holds.
  const devices = await start("ProvisionNewDevices", 30);
  await until("HelloCities to complete", async () => (await status(hello)) === "Completed");
  await until("the devices to be provisioned", async () => (await status(devices)) === "Completed", 60000);
  await until("the approval to wait", async () => (await status(approval)) === "Running");

  browser = await chromium.launch({ executablePath: CHROME, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => d.accept());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const rows = () => page.$$eval("#instances tr[data-id]", (trs) => trs.map((t) => t.dataset.id));

  // The list, and paging: 33 instances, 25 to a page.
  await page.goto(`${base}/`);
  await page.waitForSelector("#instances tr[data-id]");
  const first = await rows();
  assert.equal(first.length, 25, "a full first page");
  await page.click("text=Next ›");
  await page.waitForSelector("text=Page 2");
  const second = await until("the second page", async () => {
    const r = await rows();
    return r.length === 8 && !r.some((id) => first.includes(id)) ? r : null;
  });
  assert.ok([...first, ...second].includes(hello) && [...first, ...second].includes(approval));

  // Filters: status, name, id prefix.
  await page.selectOption("select[name=runtimeStatus]", "Running");
  await page.click("button[type=submit]");
  await until("the Running filter", async () => {
    const r = await rows();
    return r.length === 1 && r[0] === approval;
  });
  await page.click("text=Clear");
  await page.fill("input[name=name]", "HelloCities");
  await page.click("button[type=submit]");
  await until("the name filter", async () => {
    const r = await rows();
    return r.length === 1 && r[0] === hello;
  });
  await page.click("text=Clear");
  await page.fill("input[name=instanceIdPrefix]", `${devices}-device-00`);
  await page.click("button[type=submit]");
  await until("the id-prefix filter", async () => (await rows()).length === 9);

  // An instance: details, timeline (three activities one after the other),
  // history.
  await page.click("text=Clear");
  await page.fill("input[name=name]", "HelloCities");
  await page.click("button[type=submit]");
  await until("the HelloCities row", async () => (await rows()).length === 1);
  await page.click(`#instances a:has-text("${hello}")`);
  await page.waitForSelector("#timeline");
  assert.equal(await page.textContent("#status"), "Completed");
  assert.match(await page.textContent("#output"), /Hello Tokyo!/);
  const bars = await page.$$eval("#timeline .tl-bar", (bs) => bs.map((b) => ({
    kind: b.dataset.kind, name: b.dataset.name, left: parseFloat(b.style.left),
  })));
  assert.deepEqual(bars.map((b) => [b.kind, b.name]), [["activity", "SayHello"], ["activity", "SayHello"], ["activity", "SayHello"]]);
  assert.ok(bars[0].left <= bars[1].left && bars[1].left <= bars[2].left, "in sequence");
  const events = await page.$$eval("#history tbody tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  for (const e of ["ExecutionStarted", "TaskScheduled", "TaskCompleted", "ExecutionCompleted"]) {
    assert.ok(events.includes(e), `history shows ${e}`);
  }

  // Parent and children: 30 sub-orchestrations side by side, a link each.
  await page.goto(`${base}/#/instances/${devices}`);
  await page.waitForSelector("#children a");
  const subs = await page.$$eval('#timeline .tl-bar[data-kind="suborchestration"]', (bs) => bs.length);
  assert.equal(subs, 30);
  await page.click(`#children a:has-text("${devices}-device-001")`);
  await page.waitForSelector("#parent a");
  assert.equal(await page.textContent("#parent a"), devices);
  if (process.env.SCREENSHOT) {
    await page.goto(`${base}/#/instances/${devices}`);
    await page.waitForSelector("#timeline");
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1250 } });
  }

  // Raise the approval's event from the page and watch it complete.
  await page.goto(`${base}/#/instances/${approval}`);
  await page.waitForSelector("#status .badge.Running");
  await page.fill("#event-name", "ApprovalEvent");
  await page.fill("#event-data", "true");
  await page.click("#raise");
  await page.waitForSelector("#status .badge.Completed", { timeout: 20000 });
  assert.match(await page.textContent("#output"), /approved and processed/);

  // Repair: an approval nobody answers has its 72-hour timer fired from
  // the page; a repair without a reason is refused; who and why (markup
  // in it shown as text) land in the history.
  const stuck = await start("ApprovalWorkflow", { request: "repair test", timeout_secs: 3600 });
  await page.goto(`${base}/#/instances/${stuck}`);
  await page.waitForSelector("#steps tr[data-step] .repair-skip", { timeout: 20000 });
  await page.click("#steps .repair-skip");
  await page.waitForSelector("#toast.error");
  assert.match(await page.textContent("#toast"), /reason/);
  const hostileReason = "<b onclick=window.__pwned=10>approver on leave</b>";
  await page.fill("#repair-reason", hostileReason);
  await page.fill("#repair-by", "dashboard test");
  await page.click("#steps .repair-skip");
  await page.waitForSelector("#status .badge.Completed", { timeout: 20000 });
  assert.match(await page.textContent("#output"), /escalated repair test/);
  await until("the repair in the history", async () => (await page.textContent("#history")).includes("StepRepaired"));
  const repairedText = await page.textContent("#history");
  assert.ok(repairedText.includes(hostileReason) && repairedText.includes("dashboard test"), "who and why shown");
  assert.equal(await page.$$eval("#app b[onclick]", (els) => els.length), 0, "the reason is text");
  assert.ok(await page.$eval("#repair", (el) => el.hidden), "no repair for a finished instance");

  // Hostile text renders as text: an instance id, an input, an event name
  // and event data made of markup create no element and run no script.
  const hostileId = `<img src=x onerror=window.__pwned=1><svg onload=window.__pwned=2>`;
  const hostileEvent = `<b onclick=window.__pwned=4>E`;
  const r = await fetch(`${api}/orchestrators/ApprovalWorkflow/${encodeURIComponent(hostileId)}`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ request: "<script>window.__pwned=3</script>", timeout_secs: 3600 }),
  });
  assert.equal(r.status, 202, "starting the hostile instance");
  await until("the hostile instance to wait", async () => (await status(encodeURIComponent(hostileId))) === "Running");
  const raised = await fetch(`${api}/instances/${encodeURIComponent(hostileId)}/raiseEvent/${encodeURIComponent(hostileEvent)}`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify("<iframe srcdoc='<script>parent.__pwned=5</script>'></iframe>"),
  });
  assert.equal(raised.status, 202, "raising the hostile event");
  await page.goto(`${base}/#/instances/${encodeURIComponent(hostileId)}`);
  await page.waitForSelector("#status .badge.Running");
  await until("the hostile event in the history", async () =>
    (await page.textContent("#app")).includes(hostileEvent) || (await page.reload(), false));
  const app = await page.textContent("#app");
  for (const text of [hostileId, "<script>window.__pwned=3</script>", hostileEvent]) {
    assert.ok(app.includes(text), `shown as text: ${text}`);
  }
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no hostile script ran");
  assert.equal(await page.$$eval("#app [onerror], #app [onload], #app [onclick], #app iframe, #app img[src=x]", (els) => els.length), 0,
    "no hostile element was created");
  // A hostile orchestration name (no worker takes it: it stays Pending),
  // a hostile output and custom status (an approval whose request is
  // markup escalates at once, and its status names the request), and a
  // hostile failure message (an input of the wrong shape, quoted back by
  // the error).
  const hostileName = `<svg onload=window.__pwned=7>N`;
  const hostileRequest = `<img src=y onerror=window.__pwned=8>`;
  const hostileInput = `<iframe srcdoc=x onload=window.__pwned=9>`;
  const named = await start(encodeURIComponent(hostileName), null);
  const escalated = await start("ApprovalWorkflow", { request: hostileRequest, timeout_secs: 0 });
  const failed = await start("ApprovalWorkflow", hostileInput);
  await until("the hostile escalation", async () => (await status(escalated)) === "Completed");
  await until("the hostile failure", async () => (await status(failed)) === "Failed");
  const shown = [
    [named, [hostileName]],
    [escalated, [`escalated ${hostileRequest} to the manager's manager`, hostileRequest]],
    [failed, [hostileInput]],
  ];
  for (const [id, texts] of shown) {
    await page.goto(`${base}/#/instances/${encodeURIComponent(id)}`);
    await page.waitForSelector("#status .badge");
    const text = await page.textContent("#app");
    for (const t of texts) assert.ok(text.includes(t), `shown as text on ${id}: ${t}`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, `no hostile script ran on ${id}`);
    assert.equal(await page.$$eval("#app svg[onload], #app [onerror], #app iframe, #app img[src=y]", (els) => els.length), 0,
      `no hostile element was created on ${id}`);
  }
  assert.match(await (async () => {
    await page.goto(`${base}/#/instances/${encodeURIComponent(escalated)}`);
    await page.waitForSelector("#status .badge");
    return page.textContent("#app");
  })(), /awaitingApprovalOf/, "the custom status is shown");
  await page.goto(`${base}/`);
  await page.waitForSelector("#instances tr[data-id]");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no hostile script ran in the list");

  // Entities: the page lists what the store holds.
  await page.goto(`${base}/#/entities`);
  await page.waitForSelector("#entities tr");

  assert.deepEqual(errors, [], "no script errors");
  console.log("dashboard: list, paging, filters, instance, timeline, history, links, raise event, repair, hostile ids, names, inputs, outputs, custom status, failures and events as text, entities: ok");
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
