//! `perdure history ID --json`, `perdure import`, `perdure replay --file`
//! and `perdure repair` as a user runs them, against a running
//! `perdure serve --samples` and against store files.

mod support;
use support::*;

/// An ApprovalWorkflow (its 72-hour timer pending) on a server of `store`.
fn waiting_approval(server: &str, id: &str) {
    ok(&[
        "start",
        "ApprovalWorkflow",
        "--id",
        id,
        "--input",
        r#"{"request":"ssd"}"#,
        "--server",
        server,
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Running, and past its first activity: the timer is pending.
    while !ok(&["history", id, "--server", server]).contains("TimerCreated") {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never set its timer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_export_is_imported_elsewhere_and_replayed_from_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prod = format!("sqlite://{}", dir.path().join("prod.db").display());
    let laptop = format!("sqlite://{}", dir.path().join("laptop.db").display());
    let file = dir.path().join("waits.json");
    let f = file.to_str().expect("path");
    {
        let (_server, url) = serve(&prod);
        waiting_approval(&url, "waits");
        let doc = ok(&["history", "waits", "--json", "--server", &url]);
        std::fs::write(&file, &doc).expect("write export");
        // The store gives the same document as the server.
        let from_store = json(&["history", "waits", "--store", &prod]);
        let from_server: serde_json::Value = serde_json::from_str(&doc).expect("json");
        assert_eq!(from_store, from_server);
        assert_eq!(from_server["format"], "perdure.history");
    }
    assert!(ok(&["replay", "--file", f]).contains("replays cleanly"));
    assert_eq!(
        ok(&["import", f, "--as", "copy", "--store", &laptop]).trim(),
        "copy"
    );
    assert!(fails(&["import", f, "--as", "copy", "--store", &laptop]).contains("already exists"));
    // A server on the laptop's store takes the imported instance on.
    let (_server, url) = serve(&laptop);
    wait_status(&url, "copy", "Running");
    ok(&[
        "raise",
        "copy",
        "ApprovalEvent",
        "--data",
        "true",
        "--server",
        &url,
    ]);
    let st = wait_status(&url, "copy", "Completed");
    assert_eq!(st["output"], "approved and processed");

    // A history the code no longer makes: exit 1, with the code.
    let doc = std::fs::read_to_string(&file).expect("read");
    let changed = dir.path().join("changed.json");
    std::fs::write(
        &changed,
        doc.replace("\"RequestApproval\"", "\"RequestSignature\""),
    )
    .expect("write");
    let out = perdure(&["replay", "--file", changed.to_str().expect("path")]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PERDURE-ND-002"), "{text}");
    assert!(fails(&["import", "/nonexistent.json", "--store", &laptop]).contains("reading"));
}

#[test]
fn a_stuck_timer_is_repaired_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("repair.db").display());
    let (_server, url) = serve(&store);
    let u = url.as_str();
    waiting_approval(u, "stuck");
    let listed = ok(&["repair", "stuck", "--server", u]);
    assert!(listed.contains("step 1: timer due"), "{listed}");
    assert!(fails(&[
        "repair",
        "stuck",
        "--step",
        "1",
        "--skip-timer",
        "--server",
        u
    ])
    .contains("--reason"));
    assert!(fails(&[
        "repair",
        "stuck",
        "--step",
        "1",
        "--complete",
        "1",
        "--reason",
        "r",
        "--server",
        u
    ])
    .contains("can only be skipped"));
    assert!(fails(&[
        "repair",
        "stuck",
        "--step",
        "7",
        "--skip-timer",
        "--reason",
        "r",
        "--store",
        &store
    ])
    .contains("pending steps: 1 (timer)"));
    ok(&[
        "repair",
        "stuck",
        "--step",
        "1",
        "--skip-timer",
        "--reason",
        "approver on leave",
        "--by",
        "ops",
        "--server",
        u,
    ]);
    let st = wait_status(u, "stuck", "Completed");
    assert_eq!(st["output"], "escalated ssd to the manager's manager");
    let doc = json(&["history", "stuck", "--server", u]);
    let repaired: Vec<&serde_json::Value> = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "StepRepaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{doc}");
    assert_eq!(repaired[0]["by"], "ops");
    assert_eq!(repaired[0]["reason"], "approver on leave");
    assert!(ok(&["history", "stuck", "--server", u]).contains("StepRepaired"));
}
