// Perdure's dashboard: a page over the management API (the same routes and
// API key as any other client). Views: the instance list (filters, paging),
// one instance (details, actions, timeline, history), and entities.
"use strict";

const BASE = "runtime/webhooks/durabletask";
const KEY = new URLSearchParams(location.search).get("code");
const PAGE = 25;
const ACTIVE = ["Pending", "Running", "Suspended"];
let refresh = null; // the current view's refresh timer

// ---- helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function api(path, params) {
  const u = new URL(`${BASE}${path}`, document.baseURI);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== "" && v !== null && v !== undefined) u.searchParams.set(k, v);
  }
  return u;
}

// The key travels in a header, never in the URLs the page polls (they end
// up in logs and histories).
async function call(method, path, params, body, headers) {
  const init = { method, headers: { ...(headers || {}) } };
  if (KEY) init.headers.authorization = `Bearer ${KEY}`;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const r = await fetch(api(path, params), init);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = text; }
  if (!r.ok) {
    const msg = json && json.message ? json.message : `${r.status} ${r.statusText}`;
    throw new Error(msg);
  }
  return { status: r.status, json, headers: r.headers };
}

function toast(msg, error) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = error ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

const time = (s) => (s ? new Date(s).toLocaleString() : "");
const badge = (s) => h("span", { class: `badge ${s}` }, s);
const link = (id) => h("a", { href: `#/instances/${encodeURIComponent(id)}`, class: "mono" }, id);
function json(v) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "none");
  return h("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2));
}

function setLive(on) {
  document.getElementById("live").textContent = on ? "● live" : "";
}

function every(ms, f) {
  clearInterval(refresh);
  refresh = setInterval(f, ms);
}

// ---- instance list ---------------------------------------------------------

const list = { filters: {}, tokens: [null], page: 0 };

function filtersFromHash(query) {
  const q = new URLSearchParams(query);
  return {
    runtimeStatus: q.get("runtimeStatus") || "",
    name: q.get("name") || "",
    instanceIdPrefix: q.get("instanceIdPrefix") || "",
    createdTimeFrom: q.get("createdTimeFrom") || "",
    createdTimeTo: q.get("createdTimeTo") || "",
  };
}

function iso(local) {
  return local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

async function showList(query) {
  list.filters = filtersFromHash(query);
  list.tokens = [null];
  list.page = 0;
  const f = list.filters;
  const status = h("select", { name: "runtimeStatus" },
    ["", "Pending", "Running", "Suspended", "Completed", "Failed", "Terminated", "ContinuedAsNew"]
      .map((s) => h("option", { value: s, selected: s === f.runtimeStatus }, s || "any")));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const d = new FormData(form);
    const q = new URLSearchParams();
    for (const [k, v] of d.entries()) if (v) q.set(k, v);
    location.hash = `#/?${q}`;
  } },
    h("label", {}, "Status", status),
    h("label", {}, "Orchestrator name", h("input", { name: "name", value: f.name, placeholder: "exact name" })),
    h("label", {}, "Instance id prefix", h("input", { name: "instanceIdPrefix", value: f.instanceIdPrefix })),
    h("label", {}, "Created from", h("input", { type: "datetime-local", name: "createdTimeFrom", value: f.createdTimeFrom })),
    h("label", {}, "Created to", h("input", { type: "datetime-local", name: "createdTimeTo", value: f.createdTimeTo })),
    h("button", { class: "primary", type: "submit" }, "Filter"),
    h("button", { type: "button", onclick: () => { location.hash = "#/"; } }, "Clear"));
  const body = h("tbody", { id: "instances" });
  const pager = h("div", { class: "pager" });
  app(h("h1", {}, "Orchestration instances"), form,
    h("table", {}, h("thead", {}, h("tr", {}, ["Instance", "Name", "Status", "Created", "Last updated"].map((c) => h("th", {}, c)))), body),
    pager);
  const load = async () => {
    const f2 = list.filters;
    const headers = {};
    const token = list.tokens[list.page];
    if (token) headers["x-ms-continuation-token"] = token;
    let r;
    try {
      r = await call("GET", "/instances", {
        runtimeStatus: f2.runtimeStatus, name: f2.name, instanceIdPrefix: f2.instanceIdPrefix,
        createdTimeFrom: iso(f2.createdTimeFrom), createdTimeTo: iso(f2.createdTimeTo), top: PAGE,
      }, undefined, headers);
    } catch (e) { toast(e.message, true); return; }
    const next = r.headers.get("x-ms-continuation-token");
    list.tokens[list.page + 1] = next;
    body.replaceChildren(...(r.json.length ? r.json.map((i) => h("tr", { "data-id": i.instanceId },
      h("td", {}, link(i.instanceId)), h("td", {}, i.name), h("td", {}, badge(i.runtimeStatus)),
      h("td", {}, time(i.createdTime)), h("td", {}, time(i.lastUpdatedTime))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No instances match."))]));
    pager.replaceChildren(
      h("button", { disabled: list.page === 0, onclick: () => { list.page -= 1; load(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${list.page + 1}`),
      h("button", { disabled: !next, onclick: () => { list.page += 1; load(); } }, "Next ›"));
    const live = r.json.some((i) => ACTIVE.includes(i.runtimeStatus));
    setLive(live);
  };
  await load();
  every(3000, load);
}

// ---- one instance -----------------------------------------------------------

function spans(history, now) {
  // Activities, timers and sub-orchestrations: from their scheduling event
  // to the event that ended them (still open: to now).
  const open = new Map();
  const out = [];
  for (const e of history) {
    const t = Date.parse(e.Timestamp);
    switch (e.EventType) {
      case "TaskScheduled":
        open.set(e.EventId, { kind: "activity", label: e.FunctionName, start: t, id: e.EventId });
        break;
      case "SubOrchestrationInstanceCreated":
        open.set(e.EventId, { kind: "suborchestration", label: e.FunctionName, start: t, id: e.EventId, child: e.InstanceId });
        break;
      case "TimerCreated":
        open.set(e.EventId, { kind: "timer", label: `timer until ${time(e.FireAt)}`, start: t, id: e.EventId });
        break;
      case "TaskCompleted": case "TaskFailed":
      case "SubOrchestrationInstanceCompleted": case "SubOrchestrationInstanceFailed":
      case "TimerFired": case "StepRepaired": {
        const key = e.EventType === "TimerFired" ? e.TimerId
          : e.EventType === "StepRepaired" ? e.StepId : e.TaskScheduledId;
        const s = open.get(key);
        if (s) {
          open.delete(key);
          out.push({ ...s, end: t, failed: e.EventType.endsWith("Failed") });
        }
        break;
      }
      default:
    }
  }
  for (const s of open.values()) out.push({ ...s, end: now, open: true });
  return out.sort((a, b) => a.start - b.start || a.id - b.id);
}

function timeline(history, running) {
  const started = history.find((e) => e.EventType === "ExecutionStarted");
  const ended = history.find((e) => e.EventType === "ExecutionCompleted");
  if (!started) return h("p", { class: "muted" }, "No history yet.");
  const t0 = Date.parse(started.Timestamp);
  const now = Date.now();
  const items = spans(history, running ? now : (ended ? Date.parse(ended.Timestamp) : now));
  const t1 = Math.max(ended ? Date.parse(ended.Timestamp) : now, ...items.map((s) => s.end), t0 + 1);
  const pct = (t) => `${((t - t0) / (t1 - t0)) * 100}%`;
  if (!items.length) return h("p", { class: "muted" }, "No activities, timers or sub-orchestrations.");
  return h("div", { class: "timeline card", id: "timeline" },
    items.map((s) => h("div", { class: "tl-row" },
      h("div", { class: "tl-label", title: s.child || s.label }, s.child
        ? h("a", { href: `#/instances/${encodeURIComponent(s.child)}` }, `…${s.child.slice(-12)} `, h("span", { class: "muted" }, s.label))
        : s.label),
      h("div", { class: "tl-track" }, h("div", {
        class: `tl-bar ${s.kind}${s.failed ? " failed" : ""}${s.open ? " open" : ""}`,
        "data-kind": s.kind, "data-name": s.label,
        style: { left: pct(s.start), width: `calc(${pct(s.end)} - ${pct(s.start)})` },
        title: `${s.label}: ${((s.end - s.start) / 1000).toFixed(3)} s${s.open ? " (running)" : ""}`,
      })))),
    h("div", { class: "tl-axis" }, h("span", {}, "0 s"), h("span", {}, `${((t1 - t0) / 1000).toFixed(3)} s`)));
}

function historyTable(history) {
  const detail = (e) => {
    const parts = [];
    for (const k of ["Name", "FunctionName", "InstanceId", "FireAt", "OrchestrationStatus", "StepId", "Step", "Repair", "By", "Reason", "Details"]) {
      if (e[k] !== undefined && e[k] !== null) parts.push(`${k}: ${typeof e[k] === "string" ? e[k] : JSON.stringify(e[k])}`);
    }
    for (const k of ["Input", "Result", "FailureDetails"]) {
      if (e[k] !== undefined && e[k] !== null) parts.push(`${k}: ${JSON.stringify(e[k])}`);
    }
    return parts.join("\n");
  };
  return h("table", { id: "history" },
    h("thead", {}, h("tr", {}, ["#", "Event", "Time", "Details"].map((c) => h("th", {}, c)))),
    h("tbody", {}, history.map((e) => h("tr", {},
      h("td", {}, e.EventId), h("td", {}, e.EventType), h("td", {}, time(e.Timestamp)),
      h("td", { class: "mono" }, detail(e))))));
}

async function act(id, what, params, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  try {
    if (what === "purge") {
      await call("DELETE", `/instances/${encodeURIComponent(id)}`);
      toast(`Purged ${id}`);
      location.hash = "#/";
      return;
    }
    await call("POST", `/instances/${encodeURIComponent(id)}/${what}`, params, body);
    toast(`${what} sent to ${id}`);
  } catch (e) { toast(e.message, true); }
}

// The action bar is built once per instance view (so that what is typed in
// it survives live updates); `update` enables what the status allows.
function actions(id) {
  const eventName = h("input", { id: "event-name", placeholder: "event name" });
  const eventData = h("input", { id: "event-data", placeholder: "JSON data, e.g. true" });
  const reason = h("input", { id: "reason", placeholder: "reason (optional)" });
  const raise = () => {
    let data = null;
    const text = eventData.value.trim();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { toast("The event data is not valid JSON.", true); return; }
    }
    if (!eventName.value.trim()) { toast("Name the event to raise.", true); return; }
    act(id, `raiseEvent/${encodeURIComponent(eventName.value.trim())}`, {}, data);
  };
  const b = {
    raise: h("button", { class: "primary", id: "raise", onclick: raise }, "Raise event"),
    suspend: h("button", { id: "suspend", onclick: () => act(id, "suspend", { reason: reason.value }) }, "Suspend"),
    resume: h("button", { id: "resume", onclick: () => act(id, "resume", { reason: reason.value }) }, "Resume"),
    terminate: h("button", { class: "danger", id: "terminate", onclick: () => act(id, "terminate", { reason: reason.value }, undefined, `Terminate ${id}? It stops for good.`) }, "Terminate"),
    rewind: h("button", { id: "rewind", onclick: () => act(id, "rewind", { reason: reason.value }) }, "Rewind"),
    restart: h("button", { id: "restart", onclick: () => act(id, "restart", {}, undefined, `Restart ${id} with its original input?`) }, "Restart"),
    purge: h("button", { class: "danger", id: "purge", onclick: () => act(id, "purge", {}, undefined, `Purge ${id} and its history? This cannot be undone.`) }, "Purge"),
  };
  const el = h("div", { class: "card" },
    h("div", { class: "actions" },
      h("label", { class: "field" }, "Event", eventName), h("label", { class: "field" }, "Data", eventData), b.raise),
    h("div", { class: "actions" },
      h("label", { class: "field" }, "Reason", reason),
      b.suspend, b.resume, b.terminate, b.rewind, b.restart, b.purge));
  const update = (s) => {
    const active = ACTIVE.includes(s);
    b.raise.disabled = !active;
    b.suspend.disabled = s !== "Running" && s !== "Pending";
    b.resume.disabled = s !== "Suspended";
    b.terminate.disabled = !active;
    b.rewind.disabled = s !== "Failed";
    b.purge.disabled = active;
  };
  return { el, update };
}

// Repair of a stuck instance: its pending steps (activities and
// sub-orchestrations without a result, timers not yet fired), each with
// what can be done to it; who and why are recorded in the history.
function repairs(id) {
  const reason = h("input", { id: "repair-reason", placeholder: "why (recorded)" });
  const by = h("input", { id: "repair-by", value: "dashboard", placeholder: "who (recorded)" });
  const result = h("input", { id: "repair-result", placeholder: "JSON result, e.g. \"done\"" });
  const error = h("input", { id: "repair-error", placeholder: "error message" });
  const rows = h("tbody", { id: "steps" });
  let shown = "";
  const send = async (step, body, what) => {
    if (!reason.value.trim()) { toast("Say why: the reason is recorded with the repair.", true); return; }
    if (!window.confirm(`${what} step ${step.stepId} of ${id}? The instance's code sees this as the step's result.`)) return;
    try {
      await call("POST", `/instances/${encodeURIComponent(id)}/repair`, {},
        { stepId: step.stepId, by: by.value.trim() || "dashboard", reason: reason.value.trim(), ...body });
      toast(`Repair of step ${step.stepId} sent to ${id}`);
      shown = "";
    } catch (e) { toast(e.message, true); }
  };
  const complete = (step) => {
    let value = null;
    const text = result.value.trim();
    if (text) {
      try { value = JSON.parse(text); } catch (_) { toast("The result is not valid JSON.", true); return; }
    }
    send(step, { action: "complete", result: value }, "Complete");
  };
  const fail = (step) => {
    if (!error.value.trim()) { toast("Give the error message the step fails with.", true); return; }
    send(step, { action: "fail", errorMessage: error.value.trim() }, "Fail");
  };
  const el = h("div", { class: "card", id: "repair" },
    h("div", { class: "actions" },
      h("label", { class: "field" }, "Reason", reason), h("label", { class: "field" }, "By", by),
      h("label", { class: "field" }, "Result", result), h("label", { class: "field" }, "Error", error)),
    h("table", {}, h("thead", {}, h("tr", {}, ["Step", "Kind", "Name", "Since / due", ""].map((c) => h("th", {}, c)))), rows));
  const update = async (active) => {
    el.hidden = !active;
    if (!active) return;
    let r;
    try { r = await call("GET", `/instances/${encodeURIComponent(id)}/steps`); } catch (_) { return; }
    const steps = r.json.steps || [];
    const key = JSON.stringify(steps.map((s) => s.stepId));
    if (key === shown) return;
    shown = key;
    rows.replaceChildren(...(steps.length ? steps.map((s) => h("tr", { "data-step": s.stepId },
      h("td", {}, s.stepId), h("td", {}, s.kind), h("td", {}, s.name || ""),
      h("td", {}, s.kind === "timer" ? `due ${time(s.fireAt)}` : `since ${time(s.scheduledAt)}`),
      h("td", {}, s.kind === "timer"
        ? h("button", { class: "repair-skip", onclick: () => send(s, { action: "skipTimer" }, "Fire the timer of") }, "Fire now")
        : [h("button", { class: "repair-complete", onclick: () => complete(s) }, "Complete"), " ",
          h("button", { class: "danger repair-fail", onclick: () => fail(s) }, "Fail")])))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No pending step."))]));
  };
  return { el, update };
}

async function showInstance(id) {
  const head = h("h1", {}, id);
  const details = h("div", {});
  const bar = actions(id);
  const fix = repairs(id);
  const tl = h("div", {});
  const hist = h("div", {});
  app(h("p", {}, h("a", { href: "#/" }, "‹ All instances")), head, details,
    h("h2", {}, "Actions"), bar.el, h("h2", { id: "repair-title" }, "Repair a stuck step"), fix.el,
    h("h2", {}, "Timeline"), tl, h("h2", {}, "History"), hist);
  const load = async () => {
    let r;
    try {
      r = await call("GET", `/instances/${encodeURIComponent(id)}`,
        { showHistory: true, showHistoryOutput: true, showInput: true });
    } catch (e) { details.replaceChildren(h("p", { class: "failure" }, e.message)); clearInterval(refresh); return; }
    const st = r.json;
    const history = st.historyEvents || [];
    const running = ACTIVE.includes(st.runtimeStatus);
    const started = history.find((e) => e.EventType === "ExecutionStarted");
    const parent = started && started.ParentInstanceId;
    const children = history.filter((e) => e.EventType === "SubOrchestrationInstanceCreated" && e.InstanceId);
    const f = st.failureDetails;
    head.replaceChildren(st.instanceId, " ", h("span", { id: "status" }, badge(st.runtimeStatus)));
    details.replaceChildren(h("dl", { class: "grid card" },
      h("dt", {}, "Name"), h("dd", {}, st.name),
      h("dt", {}, "Created"), h("dd", {}, time(st.createdTime)),
      h("dt", {}, "Last updated"), h("dd", {}, time(st.lastUpdatedTime)),
      parent ? [h("dt", {}, "Parent"), h("dd", { id: "parent" }, link(parent))] : [],
      children.length ? [h("dt", {}, "Children"), h("dd", { id: "children", class: "children" }, h("div", { class: "muted" }, `${children.length} sub-orchestration${children.length === 1 ? "" : "s"}`), children.map((c) => h("div", {}, link(c.InstanceId), " ", h("span", { class: "muted" }, c.FunctionName))))] : [],
      h("dt", {}, "Input"), h("dd", {}, json(st.input)),
      h("dt", {}, "Output"), h("dd", { id: "output" }, f ? h("span", { class: "muted" }, "none (failed)") : json(st.output)),
      h("dt", {}, "Custom status"), h("dd", {}, json(st.customStatus)),
      f ? [h("dt", {}, "Failure"), h("dd", { class: "failure", id: "failure" }, h("strong", {}, f.errorType), h("pre", {}, f.errorMessage))] : []));
    bar.update(st.runtimeStatus);
    await fix.update(st.runtimeStatus === "Running" || st.runtimeStatus === "Suspended");
    tl.replaceChildren(timeline(history, running));
    hist.replaceChildren(historyTable(history));
    setLive(running);
    // Every second while it runs; every five once it has ended (a rewind or
    // restart from elsewhere still shows).
    if (running !== pace) {
      pace = running;
      every(running ? 1000 : 5000, load);
    }
  };
  let pace = null;
  await load();
}

// ---- entities ---------------------------------------------------------------

async function showEntities() {
  const body = h("tbody", { id: "entities" });
  app(h("h1", {}, "Entities"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Entity", "Key", "Last operation", "State"].map((c) => h("th", {}, c)))), body));
  const load = async () => {
    let r;
    try { r = await call("GET", "/entities", { fetchState: true, top: 100 }); } catch (e) { toast(e.message, true); return; }
    body.replaceChildren(...(r.json.length ? r.json.map((e) => h("tr", {},
      h("td", {}, e.entityId.name), h("td", { class: "mono" }, e.entityId.key),
      h("td", {}, time(e.lastOperationTime)), h("td", {}, json(e.state))))
      : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No entities."))]));
  };
  await load();
  every(3000, load);
}

// ---- routing ------------------------------------------------------------------

function app(...children) {
  document.getElementById("app").replaceChildren(...children.flat().filter(Boolean));
}

function route() {
  clearInterval(refresh);
  setLive(false);
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  document.querySelectorAll("header nav a").forEach((a) => {
    a.classList.toggle("active", a.dataset.nav === (path.startsWith("/entities") ? "entities" : "instances"));
  });
  if (path.startsWith("/instances/")) return showInstance(decodeURIComponent(path.slice("/instances/".length)));
  if (path.startsWith("/entities")) return showEntities();
  return showList(query || "");
}

window.addEventListener("hashchange", route);
route();
