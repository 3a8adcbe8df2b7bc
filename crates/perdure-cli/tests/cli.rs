//! The `perdure` command as a user runs it: instance commands against a
//! store file and against a running `perdure serve --samples`.

mod support;
use std::process::{Command, Stdio};
use support::*;

#[test]
fn instance_commands_against_a_store_and_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("cli.db").display());
    let s = store.as_str();

    // Against the store, with no worker: the instance waits as Pending.
    assert_eq!(
        ok(&["start", "HelloCities", "--id", "local-1", "--store", s]).trim(),
        "local-1"
    );
    let st = json(&["status", "local-1", "--store", s]);
    assert_eq!(st["runtimeStatus"], "Pending");
    assert!(ok(&["status", "local-1", "--store", s]).contains("Pending"));
    assert!(
        fails(&["start", "HelloCities", "--id", "local-1", "--store", s]).contains("still Pending")
    );
    assert!(fails(&["start", "X", "--input", "{oops", "--store", s]).contains("not valid JSON"));
    assert!(fails(&["status", "missing", "--store", s]).contains("not found"));
    assert!(
        fails(&["start", "HelloCities", "--id", "a/b", "--store", s])
            .contains("forbidden character")
    );

    // A server on the same file runs it, and everything works through it.
    let (_server, url) = serve(s);
    let u = url.as_str();
    wait_status(u, "local-1", "Completed");
    let table = ok(&["history", "local-1", "--server", u]);
    assert!(
        table.contains("TaskCompleted")
            && table.contains("Hello Tokyo!")
            && table.contains("ExecutionCompleted"),
        "{table}"
    );
    let id = ok(&[
        "start",
        "ApprovalWorkflow",
        "--input",
        r#"{"request":"cli"}"#,
        "--server",
        u,
    ])
    .trim()
    .to_string();
    wait_status(u, &id, "Running");
    ok(&["suspend", &id, "--reason", "hold", "--server", u]);
    wait_status(u, &id, "Suspended");
    ok(&[
        "raise",
        &id,
        "ApprovalEvent",
        "--data",
        "true",
        "--server",
        u,
    ]);
    ok(&["resume", &id, "--server", u]);
    let st = wait_status(u, &id, "Completed");
    assert_eq!(st["output"], "approved and processed");
    assert!(fails(&["rewind", &id, "--server", u]).contains("410"));
    let again = ok(&["restart", &id, "--new-id", "--server", u])
        .trim()
        .to_string();
    assert_ne!(again, id);
    ok(&["terminate", &again, "--reason", "enough", "--server", u]);
    let st = wait_status(u, &again, "Terminated");
    assert_eq!(st["output"], "enough");
    let list = json(&["list", "--status", "Completed,Terminated", "--server", u]);
    assert_eq!(list.as_array().expect("array").len(), 3, "{list}");
    let listed = ok(&["list", "--prefix", "local-", "--store", s]);
    assert!(
        listed.contains("local-1") && listed.contains("Completed"),
        "{listed}"
    );
    let purged = json(&["purge", "local-1", "--server", u]);
    assert_eq!(purged["instancesDeleted"], 1);
    assert!(fails(&["status", "local-1", "--server", u]).contains("404"));
    let purged = json(&["purge", "--before", "2999-01-01T00:00:00Z", "--store", s]);
    assert_eq!(purged["instancesDeleted"], 2);
    assert!(fails(&["status", "x", "--server", "http://127.0.0.1:9"]).contains("cannot reach"));
}

#[test]
fn two_servers_on_one_postgres_hub_serve_the_same_instances() {
    let Some(store) = perdure_store::conformance::postgres_test_url("the two-server test") else {
        return;
    };
    let (_a, url_a) = serve_with(&store, true);
    let (_b, url_b) = serve_with(&store, true);
    let mut ids = Vec::new();
    for i in 0..10 {
        let via = if i % 2 == 0 { &url_a } else { &url_b };
        ids.push(
            ok(&["start", "HelloCities", "--server", via])
                .trim()
                .to_string(),
        );
    }
    for (i, id) in ids.iter().enumerate() {
        // Asked through the other server than the one that started it.
        let via = if i % 2 == 0 { &url_b } else { &url_a };
        let st = wait_status(via, id, "Completed");
        assert_eq!(st["output"][0], "Hello Tokyo!");
    }
    let list = json(&["list", "--store", &store]);
    assert_eq!(list.as_array().expect("array").len(), 10);
    let id = ok(&[
        "start",
        "ApprovalWorkflow",
        "--input",
        r#"{"request":"pg"}"#,
        "--server",
        &url_a,
    ])
    .trim()
    .to_string();
    wait_status(&url_b, &id, "Running");
    ok(&[
        "raise",
        &id,
        "ApprovalEvent",
        "--data",
        "true",
        "--server",
        &url_b,
    ]);
    assert_eq!(
        wait_status(&url_a, &id, "Completed")["output"],
        "approved and processed"
    );
}

#[test]
fn demo_runs_every_pattern() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("demo.db").display());
    let out = ok(&["demo", "--store", &store]);
    for expected in [
        r#"["Hello Tokyo!","Hello Seattle!","Hello London!"]"#,
        "ExecutionCompleted",
        r#""sum":2870"#,
        "status Completed",
        r#""checks":3"#,
        "approved and processed",
        "escalated expense-1002",
        "device-005 provisioned",
        "credited 100 to bob on attempt 3",
        "refunded 100 to alice",
        r#""round":5"#,
        "All patterns completed.",
    ] {
        assert!(
            out.contains(expected),
            "the demo should print {expected}:\n{out}"
        );
    }
}

/// (behaviour, command line with `{closed}` for a port nobody listens on,
/// words its one error line holds)
const PASSWORD_CASES: &[(&str, &[&str], &str)] = &[
    (
        "an instance command shows the store without its password",
        &[
            "status",
            "x",
            "--store",
            "postgres://app:s3cret@127.0.0.1:{closed}/db?sslmode=disable",
        ],
        "opening store postgres://app:***@127.0.0.1",
    ),
    (
        "so does the demo",
        &[
            "demo",
            "--store",
            "postgres://app:s3cret@127.0.0.1:{closed}/db?password=s3cret",
        ],
        "password=***",
    ),
    (
        "so does serve when the store cannot be opened",
        &[
            "serve",
            "--store",
            "postgress://app:s3cret@db/x",
            "--http",
            "127.0.0.1:0",
        ],
        "postgress://app:***@db/x",
    ),
];

#[test]
fn a_store_password_never_shows_in_errors() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    for (what, args, words) in PASSWORD_CASES {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{closed}", &closed))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(err.contains(words), "{what}: `{err}` lacks `{words}`");
        assert!(!err.contains("s3cret"), "{what}: {err}");
    }
}

#[test]
fn the_serve_banner_shows_the_store_without_its_password() {
    let Some(store) = perdure_store::conformance::postgres_test_url("the serve banner test") else {
        return;
    };
    // The local server trusts its clients, so any password logs in.
    let Some((scheme, rest)) = store.split_once("://") else {
        panic!("PERDURE_TEST_POSTGRES is not a URL: {store}");
    };
    let Some((user, rest)) = rest.split_once('@') else {
        panic!("PERDURE_TEST_POSTGRES names no user: {store}");
    };
    let with_password = format!("{scheme}://{user}:s3cret@{rest}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_perdure"))
        .args(["serve", "--store", &with_password])
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn perdure serve");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Serve(child);
    // The banner comes once both doors listen; an early exit ends the
    // stream instead.
    let banner = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.starts_with("perdure serve:"))
        .expect("perdure serve printed its banner");
    assert!(
        banner.contains(&format!("{scheme}://{user}:***@")),
        "{banner}"
    );
    assert!(!banner.contains("s3cret"), "{banner}");
    drop(guard);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(perdure::delete_store(&store))
        .expect("drop the hub");
}

/// `perdure replay` checks the store's running instances against this
/// build's orchestrations: a history the samples recorded replays cleanly,
/// and instances of orchestrations the build does not hold are named.
#[test]
fn replay_checks_running_instances_against_this_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("replay.db").display());
    let s = store.as_str();
    {
        let (_server, url) = serve(s);
        let u = url.as_str();
        ok(&[
            "start",
            "ApprovalWorkflow",
            "--id",
            "waits",
            "--input",
            r#"{"request":"replay"}"#,
            "--server",
            u,
        ]);
        wait_status(u, "waits", "Running");
        ok(&["start", "HelloCities", "--id", "done", "--server", u]);
        wait_status(u, "done", "Completed");
    }
    let out = ok(&["replay", "--store", s]);
    assert!(
        out.contains("checked 1 instances: 1 replay cleanly, 0 do not"),
        "{out}"
    );
    let out = ok(&["replay", "--store", s, "--since", "2000-01-01T00:00:00Z"]);
    assert!(
        out.contains("checked 2 instances: 2 replay cleanly, 0 do not"),
        "{out}"
    );
    let out = ok(&["replay", "--store", s, "--name", "HelloCities"]);
    assert!(out.contains("checked 0 instances"), "{out}");
    assert!(
        fails(&["replay", "--store", s, "--since", "yesterday"]).contains("--since must be a time")
    );
}
