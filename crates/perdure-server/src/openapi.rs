//! The OpenAPI 3.0 description of the HTTP API, served at `/openapi.json`:
//! every route of the webhook API (instances and entities) and of
//! `/metrics`, every answer each can give (the door's refusals included:
//! 401 without the key, 403 for a foreign host or origin on a keyless
//! server, 413 for a body over the payload limit, 415 for a body that is not
//! JSON) and the shapes of those answers. `tests/schemathesis` holds the
//! server to it.

use crate::BASE_PATH;
use axum::Json;
use serde_json::{json, Map, Value};

fn param(name: &str, at: &str, schema: Value, doc: &str) -> Value {
    json!({ "name": name, "in": at, "required": at == "path", "schema": schema, "description": doc })
}

fn string() -> Value {
    json!({ "type": "string" })
}

/// Characters no instance id or entity key holds: `/ \ # ?` and
/// control characters.
const FORBIDDEN: &str = "/\\\\#?\\u0000-\\u001f\\u007f-\\u009f";

/// An instance id: 1 to 256 characters, not starting with `@`.
fn instance_id() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 256,
        "pattern": format!("^[^@{FORBIDDEN}][^{FORBIDDEN}]*$") })
}

/// An entity name (no `@`) or key; the id `@name@key` is at most 256
/// characters.
fn entity_part(name: bool) -> Value {
    let pattern = if name {
        "^[^@]+$".to_string()
    } else {
        format!("^[^{FORBIDDEN}]+$")
    };
    json!({ "type": "string", "minLength": 1, "maxLength": 127, "pattern": pattern })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_answer(doc: &str, body: Value) -> Value {
    json!({ "description": doc, "content": { "application/json": { "schema": body } } })
}

/// A refusal: a JSON error body.
fn refusal(doc: &str) -> Value {
    json_answer(doc, schema("Error"))
}

fn empty(doc: &str) -> Value {
    json!({ "description": doc })
}

/// Seconds, as `timeout` and `pollingInterval` take them: under a day.
fn seconds() -> Value {
    json!({ "type": "number", "minimum": 0, "maximum": 86400, "exclusiveMaximum": true })
}

/// The statuses a list or purge filters on: comma-separated names.
fn statuses() -> Value {
    json!({ "name": "runtimeStatus", "in": "query", "required": false, "style": "form", "explode": false,
        "schema": { "type": "array", "items": schema("RuntimeStatus") },
        "description": "Only instances in these statuses (comma-separated)" })
}

fn required(mut p: Value) -> Value {
    p["required"] = json!(true);
    p
}

fn top() -> Value {
    param(
        "top",
        "query",
        json!({ "type": "integer", "minimum": 1, "maximum": 10000 }),
        "Page size (default 100)",
    )
}

/// A 202 answer that carries the management URLs.
fn check_status(doc: &str) -> Value {
    json!({ "description": doc, "headers": {
        "Location": { "schema": { "type": "string" }, "description": "The status URL" },
        "Retry-After": { "schema": { "type": "integer" } } },
        "content": { "application/json": { "schema": schema("CheckStatus") } } })
}

/// A page of a list, with the token of the next page in a header.
fn page(doc: &str, item: Value) -> Value {
    json!({ "description": doc, "headers": {
        "x-ms-continuation-token": { "schema": { "type": "string" }, "description": "Present when there are more pages: send it back in the request header of the same name" } },
        "content": { "application/json": { "schema": { "type": "array", "items": item } } } })
}

/// One operation: `answers` are its own; every operation also takes
/// `taskHub` and may answer 400 (a bad parameter or task hub name), 401,
/// 403 (a foreign host or origin, or the read-only key used to write), 404
/// (no such task hub), 405, 414 (a target past the limit) and 503 (the
/// hub's store cannot be opened, or the server's body budget is spent);
/// one with a body, 408, 413 and 415.
fn op(summary: &str, mut params: Vec<Value>, body: bool, answers: Vec<(&str, Value)>) -> Value {
    params.push(param(
        "taskHub",
        "query",
        string(),
        "The task hub (default: `default`); 1 to 40 characters of a-z, 0-9, - and _",
    ));
    let mut responses = Map::new();
    for (code, answer) in answers {
        responses.insert(code.to_string(), answer);
    }
    let mut common = vec![
        ("400", refusal("Bad input: a malformed parameter, id or task hub name")),
        ("401", refusal("The server has an API key and the request does not carry it (`code` query parameter or `Authorization: Bearer`)")),
        ("403", refusal("A keyless server answers only requests for a loopback host from its own origin; the read-only key cannot change anything")),
        ("404", refusal("No such task hub")),
        ("405", refusal("The route does not take this method (see `Allow`)")),
        ("414", refusal("The request target is longer than the server reads")),
        ("503", refusal("The task hub's store cannot be opened, or the server holds as many request bodies as it may")),
    ];
    if body {
        common.push(("408", refusal("The body did not arrive in time")));
        common.push(("413", refusal("The body is larger than the payload limit")));
        common.push((
            "415",
            refusal("The body is typed as something other than JSON"),
        ));
    }
    for (code, answer) in common {
        responses.entry(code).or_insert(answer);
    }
    let mut o = json!({ "summary": summary, "parameters": params, "responses": responses });
    if body {
        o["requestBody"] =
            json!({ "required": false, "content": { "application/json": { "schema": {} } } });
    }
    o
}

fn paths() -> Map<String, Value> {
    let id = param("instanceId", "path", instance_id(), "Instance id");
    let reason = param("reason", "query", string(), "Why; recorded in history");
    let not_found = || refusal("No such instance (or task hub)");
    let gone = || refusal("The instance has already finished");
    let accepted = || empty("Accepted");
    let status_ok = || json_answer("The instance's status", schema("Status"));
    let control = |what: &str, extra: Vec<Value>| {
        let mut params = vec![id.clone(), reason.clone()];
        params.extend(extra);
        json!({ "post": op(what, params, false, vec![
            ("202", accepted()), ("404", not_found()), ("410", gone())]) })
    };
    let start = |with_id: bool| {
        let mut params = vec![param("name", "path", string(), "Orchestrator name")];
        if with_id {
            params.push(id.clone());
        }
        params.push(param(
            "timeout",
            "query",
            seconds(),
            "Wait up to this many seconds for the result",
        ));
        params.push(param(
            "pollingInterval",
            "query",
            seconds(),
            "Seconds between checks while waiting",
        ));
        json!({ "post": op("Start an orchestration; the body is its input", params, true, vec![
            ("200", json_answer("Finished within the timeout; the body is the output", json!({}))),
            ("202", check_status("Started")),
            ("409", refusal("An instance with this id exists and is still running"))]) })
    };
    let purged = || json_answer("Purged", schema("Purged"));
    let entity_name = param("entityName", "path", entity_part(true), "Entity name");
    let entity_key = param("entityKey", "path", entity_part(false), "Entity key");
    let entity_list = |params: Vec<Value>| {
        let mut params = params;
        params.push(top());
        params.push(param(
            "fetchState",
            "query",
            boolean(),
            "Include each entity's state",
        ));
        params.push(param(
            "x-ms-continuation-token",
            "header",
            string(),
            "Continuation from the previous page",
        ));
        json!({ "get": op("List entities", params, false, vec![
            ("200", page("A page of entities", schema("Entity")))]) })
    };

    let mut paths = Map::new();
    let mut add = |path: &str, item: Value| {
        paths.insert(format!("{BASE_PATH}{path}"), item);
    };
    add("/orchestrators/{name}", start(false));
    add("/orchestrators/{name}/{instanceId}", start(true));
    add(
        "/instances",
        json!({
        "get": op("List instances", vec![
            statuses(),
            param("createdTimeFrom", "query", date_time(), "Created at or after (ISO 8601)"),
            param("createdTimeTo", "query", date_time(), "Created at or before (ISO 8601)"),
            param("instanceIdPrefix", "query", string(), "Id prefix"),
            param("name", "query", string(), "Orchestrator name (a Perdure extension)"),
            top(),
            param("showInput", "query", boolean(), "Include inputs"),
            param("x-ms-continuation-token", "header", string(), "Continuation from the previous page")],
            false, vec![("200", page("A page of statuses", schema("Status")))]),
        "delete": op("Purge finished instances by filter", vec![
            required(param("createdTimeFrom", "query", date_time(), "Created at or after (ISO 8601)")),
            param("createdTimeTo", "query", date_time(), "Created at or before (ISO 8601)"),
            statuses()],
            false, vec![("200", purged()), ("404", refusal("No finished instance matched"))]) }),
    );
    add(
        "/instances/{instanceId}",
        json!({
        "get": op("Get an instance's status", vec![id.clone(),
            param("showHistory", "query", boolean(), "Include the history"),
            param("showHistoryOutput", "query", boolean(), "Include results in the history"),
            param("showInput", "query", boolean(), "Include the input (default true)"),
            param("returnInternalServerErrorOnFailure", "query", boolean(), "Answer 500 for Failed instances")],
            false, vec![("200", status_ok()),
                ("202", json!({ "description": "The instance is still running", "headers": {
                    "Location": { "schema": { "type": "string" } }, "Retry-After": { "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": schema("Status") } } })),
                ("404", not_found()),
                ("500", json_answer("The instance Failed and returnInternalServerErrorOnFailure was set", schema("Status")))]),
        "delete": op("Purge a finished instance", vec![id.clone()], false, vec![
            ("200", purged()), ("404", not_found()), ("409", refusal("Still running"))]) }),
    );
    add(
        "/instances/{instanceId}/raiseEvent/{eventName}",
        json!({ "post": op(
        "Raise an external event; the body is its data",
        vec![id.clone(), param("eventName", "path", string(), "Event name")], true,
        vec![("202", accepted()), ("404", not_found()), ("410", gone())]) }),
    );
    add(
        "/instances/{instanceId}/terminate",
        control(
            "Terminate",
            vec![param(
                "recursive",
                "query",
                boolean(),
                "Also terminate sub-orchestrations",
            )],
        ),
    );
    add(
        "/instances/{instanceId}/suspend",
        control("Suspend", vec![]),
    );
    add("/instances/{instanceId}/resume", control("Resume", vec![]));
    add(
        "/instances/{instanceId}/rewind",
        control("Rewind a Failed instance", vec![]),
    );
    add(
        "/instances/{instanceId}/restart",
        json!({ "post": op(
        "Restart a finished instance with its input",
        vec![id.clone(), param("restartWithNewInstanceId", "query", boolean(), "Use a new instance id")], false,
        vec![("202", check_status("Restarted")), ("404", not_found()),
            ("409", refusal("The new instance's id is taken by a running instance"))]) }),
    );
    add(
        "/instances/{instanceId}/export",
        json!({ "get": op("The instance's status and history as one export document (docs/history-format.md)",
            vec![id.clone()], false, vec![
            ("200", json_answer("The export document", schema("HistoryExport"))), ("404", not_found())]) }),
    );
    add(
        "/import",
        json!({ "post": op("Import an export document as a new instance; the body is the document",
            vec![param("instanceId", "query", instance_id(), "Import under this id (default: the exported one)")], true,
            vec![("201", json_answer("Imported", json!({ "type": "object", "required": ["id"],
                "properties": { "id": { "type": "string" } } })))]) }),
    );
    add(
        "/instances/{instanceId}/steps",
        json!({ "get": op("The steps the instance still waits on (activities, sub-orchestrations, timers)",
            vec![id.clone()], false, vec![
            ("200", json_answer("Pending steps", json!({ "type": "object", "required": ["steps"], "properties": {
                "steps": { "type": "array", "items": { "type": "object", "required": ["stepId", "kind"] } } } }))),
            ("404", not_found())]) }),
    );
    add(
        "/instances/{instanceId}/repair",
        json!({ "post": op("Repair a pending step: complete it, fail it or skip its timer; who and why are recorded. \
            Body: {stepId, action: complete|fail|skipTimer, result?, errorType?, errorMessage?, by, reason}",
            vec![id.clone()], true, vec![("202", accepted()), ("404", not_found())]) }),
    );
    add("/entities", entity_list(vec![]));
    add(
        "/entities/{entityName}",
        entity_list(vec![entity_name.clone()]),
    );
    add(
        "/entities/{entityName}/{entityKey}",
        json!({
        "get": op("Read an entity's state", vec![entity_name.clone(), entity_key.clone()], false, vec![
            ("200", json_answer("The entity's state", json!({}))),
            ("404", refusal("The entity has no state"))]),
        "post": op("Signal an entity; the body is the operation's input", vec![entity_name, entity_key,
            required(param("op", "query", string(), "The operation"))],
            true, vec![("202", accepted())]) }),
    );
    let mut metrics_text = Map::new();
    metrics_text.insert(
        perdure::metrics::CONTENT_TYPE.to_string(),
        json!({ "schema": { "type": "string" } }),
    );
    paths.insert(
        "/metrics".to_string(),
        json!({ "get": { "summary": "The process's metrics and the store's queues (Prometheus / OpenMetrics text)",
            "responses": {
                "200": { "description": "Metrics", "content": metrics_text },
                "401": refusal("The server has an API key and the request does not carry it"),
                "403": refusal("A keyless server answers only requests for a loopback host from its own origin"),
                "503": refusal("The store's queues cannot be read") } } }),
    );
    paths
}

fn components() -> Value {
    json!({ "schemas": {
        "Error": { "type": "object", "required": ["error", "message"], "properties": {
            "error": { "type": "string" }, "message": { "type": "string" } } },
        "RuntimeStatus": { "type": "string", "enum": ["Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending", "Suspended"] },
        "CheckStatus": { "type": "object", "required": ["id", "statusQueryGetUri"], "properties": {
            "id": { "type": "string" }, "statusQueryGetUri": { "type": "string" }, "sendEventPostUri": { "type": "string" },
            "terminatePostUri": { "type": "string" }, "purgeHistoryDeleteUri": { "type": "string" }, "restartPostUri": { "type": "string" },
            "suspendPostUri": { "type": "string" }, "resumePostUri": { "type": "string" }, "rewindPostUri": { "type": "string" } } },
        "Status": { "type": "object", "required": ["name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"], "properties": {
            "name": { "type": "string" }, "instanceId": { "type": "string" },
            "runtimeStatus": { "$ref": "#/components/schemas/RuntimeStatus" },
            "input": {}, "customStatus": {}, "output": {}, "createdTime": { "type": "string" }, "lastUpdatedTime": { "type": "string" },
            "failureDetails": { "type": "object", "properties": { "errorType": { "type": "string" }, "errorMessage": { "type": "string" } } },
            "historyEvents": { "type": "array", "items": { "type": "object" } } } },
        "HistoryExport": { "type": "object", "required": ["format", "formatVersion", "instanceId", "name", "runtimeStatus", "events"], "properties": {
            "format": { "type": "string" }, "formatVersion": { "type": "integer" }, "instanceId": { "type": "string" },
            "name": { "type": "string" }, "runtimeStatus": { "$ref": "#/components/schemas/RuntimeStatus" },
            "events": { "type": "array", "items": { "type": "object" } } } },
        "Purged": { "type": "object", "required": ["instancesDeleted"], "properties": {
            "instancesDeleted": { "type": "integer", "minimum": 1 } } },
        "Entity": { "type": "object", "required": ["entityId", "lastOperationTime"], "properties": {
            "entityId": { "type": "object", "required": ["name", "key"], "properties": {
                "name": { "type": "string" }, "key": { "type": "string" } } },
            "lastOperationTime": { "type": "string" },
            "state": {} } } } })
}

pub async fn document() -> Json<Value> {
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Perdure HTTP API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable Functions' instance-management webhook API, served by `perdure serve`. Every request needs the API key (`code` query parameter or `Authorization: Bearer`) when the server was started with one; a server without a key answers only requests for a loopback host from its own origin. Request bodies are JSON." },
        "paths": paths(),
        "components": components(),
    }))
}
