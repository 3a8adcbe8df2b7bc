//! The OpenAPI 3.0 description of the HTTP API, served at `/openapi.json`.

use crate::BASE_PATH;
use axum::Json;
use serde_json::{json, Value};

fn param(name: &str, at: &str, kind: &str, doc: &str) -> Value {
    json!({ "name": name, "in": at, "required": at == "path", "schema": { "type": kind }, "description": doc })
}

fn resp(doc: &str) -> Value {
    json!({ "description": doc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

pub async fn document() -> Json<Value> {
    let id = param("instanceId", "path", "string", "Instance id");
    let reason = param("reason", "query", "string", "Why; recorded in history");
    let err400 = resp("Bad input: malformed JSON, an invalid id or parameter");
    let err404 = resp("No such instance");
    let err410 = resp("The instance has already finished");
    let created = |doc: &str| {
        json!({ "description": doc, "headers": {
        "Location": { "schema": { "type": "string" }, "description": "The status URL" },
        "Retry-After": { "schema": { "type": "integer" } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CheckStatus" } } } })
    };
    let control = |what: &str, extra: Vec<Value>| {
        let mut params = vec![id.clone(), reason.clone()];
        params.extend(extra);
        json!({ "post": { "summary": what, "parameters": params, "responses": {
            "202": { "description": "Accepted" }, "400": err400, "404": err404, "410": err410 } } })
    };
    let status_ok = json!({ "description": "The instance's status", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } });
    let mut paths = serde_json::Map::new();
    let start = json!({ "post": {
        "summary": "Start an orchestration; the body is its input",
        "parameters": [param("name", "path", "string", "Orchestrator name"), param("instanceId", "path", "string", "Instance id (optional path segment)"),
            param("timeout", "query", "number", "Wait up to this many seconds for the result"),
            param("pollingInterval", "query", "number", "Seconds between checks while waiting")],
        "requestBody": { "required": false, "content": { "application/json": { "schema": {} } } },
        "responses": { "200": { "description": "Finished within timeout; the body is the output" },
            "202": created("Started"), "400": err400, "409": resp("An instance with this id is still running") } } });
    paths.insert(format!("{BASE_PATH}/orchestrators/{{name}}"), start.clone());
    paths.insert(
        format!("{BASE_PATH}/orchestrators/{{name}}/{{instanceId}}"),
        start,
    );
    paths.insert(format!("{BASE_PATH}/instances"), json!({
        "get": { "summary": "List instances", "parameters": [
            param("runtimeStatus", "query", "string", "Comma-separated statuses"),
            param("createdTimeFrom", "query", "string", "ISO 8601"), param("createdTimeTo", "query", "string", "ISO 8601"),
            param("instanceIdPrefix", "query", "string", "Id prefix"), param("top", "query", "integer", "Page size"),
            param("showInput", "query", "boolean", "Include inputs"),
            param("x-ms-continuation-token", "header", "string", "Continuation from the previous page")],
            "responses": { "200": { "description": "A page of statuses; more pages when the x-ms-continuation-token header is set",
                "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Status" } } } } }, "400": err400 } },
        "delete": { "summary": "Purge finished instances by filter", "parameters": [
            param("createdTimeFrom", "query", "string", "ISO 8601 (required)"), param("createdTimeTo", "query", "string", "ISO 8601"),
            param("runtimeStatus", "query", "string", "Comma-separated statuses")],
            "responses": { "200": { "description": "{\"instancesDeleted\": n}" }, "400": err400, "404": resp("Nothing matched") } } }));
    paths.insert(format!("{BASE_PATH}/instances/{{instanceId}}"), json!({
        "get": { "summary": "Get an instance's status", "parameters": [id.clone(),
            param("showHistory", "query", "boolean", "Include the history"), param("showHistoryOutput", "query", "boolean", "Include results in the history"),
            param("showInput", "query", "boolean", "Include the input (default true)"),
            param("returnInternalServerErrorOnFailure", "query", "boolean", "Answer 500 for Failed instances")],
            "responses": { "200": status_ok.clone(), "202": status_ok, "404": err404 } },
        "delete": { "summary": "Purge a finished instance", "parameters": [id.clone()],
            "responses": { "200": { "description": "{\"instancesDeleted\": 1}" }, "404": err404, "409": resp("Still running") } } }));
    paths.insert(format!("{BASE_PATH}/instances/{{instanceId}}/raiseEvent/{{eventName}}"), json!({ "post": {
        "summary": "Raise an external event; the body is its data",
        "parameters": [id.clone(), param("eventName", "path", "string", "Event name")],
        "requestBody": { "required": false, "content": { "application/json": { "schema": {} } } },
        "responses": { "202": { "description": "Accepted" }, "400": err400, "404": err404, "410": err410 } } }));
    paths.insert(
        format!("{BASE_PATH}/instances/{{instanceId}}/terminate"),
        control(
            "Terminate",
            vec![param(
                "recursive",
                "query",
                "boolean",
                "Also terminate sub-orchestrations",
            )],
        ),
    );
    paths.insert(
        format!("{BASE_PATH}/instances/{{instanceId}}/suspend"),
        control("Suspend", vec![]),
    );
    paths.insert(
        format!("{BASE_PATH}/instances/{{instanceId}}/resume"),
        control("Resume", vec![]),
    );
    paths.insert(
        format!("{BASE_PATH}/instances/{{instanceId}}/rewind"),
        control("Rewind a Failed instance", vec![]),
    );
    paths.insert(format!("{BASE_PATH}/instances/{{instanceId}}/restart"), json!({ "post": {
        "summary": "Restart a finished instance with its input",
        "parameters": [id, param("restartWithNewInstanceId", "query", "boolean", "Use a new instance id")],
        "responses": { "202": created("Restarted"), "400": err400, "404": err404 } } }));
    // Every operation takes the task hub it is for.
    let hub = param(
        "taskHub",
        "query",
        "string",
        "The task hub (default: `default`); 1 to 40 characters of a-z, 0-9, - and _",
    );
    for ops in paths.values_mut() {
        for op in ops.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            if let Some(list) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                list.push(hub.clone());
            }
        }
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Perdure HTTP API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable Functions' instance-management webhook API, served by `perdure serve`. Every request needs the API key (`code` query parameter or `Authorization: Bearer`) when the server was started with one." },
        "paths": paths,
        "components": { "schemas": {
            "Error": { "type": "object", "properties": { "error": { "type": "string" }, "message": { "type": "string" } } },
            "CheckStatus": { "type": "object", "properties": {
                "id": { "type": "string" }, "statusQueryGetUri": { "type": "string" }, "sendEventPostUri": { "type": "string" },
                "terminatePostUri": { "type": "string" }, "purgeHistoryDeleteUri": { "type": "string" }, "restartPostUri": { "type": "string" },
                "suspendPostUri": { "type": "string" }, "resumePostUri": { "type": "string" }, "rewindPostUri": { "type": "string" } } },
            "Status": { "type": "object", "properties": {
                "name": { "type": "string" }, "instanceId": { "type": "string" },
                "runtimeStatus": { "type": "string", "enum": ["Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending", "Suspended"] },
                "input": {}, "customStatus": {}, "output": {}, "createdTime": { "type": "string" }, "lastUpdatedTime": { "type": "string" },
                "historyEvents": { "type": "array", "items": { "type": "object" } } } } } }
    }))
}
