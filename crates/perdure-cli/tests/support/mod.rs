//! What the command-line tests share: running `perdure`, reading its
//! JSON, a `perdure serve --samples` in the background.
#![allow(dead_code)]

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn perdure(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perdure"))
        .args(args)
        .output()
        .expect("run perdure")
}

pub fn ok(args: &[&str]) -> String {
    let out = perdure(args);
    assert!(
        out.status.success(),
        "perdure {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

pub fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).expect("--json prints JSON")
}

pub fn fails(args: &[&str]) -> String {
    let out = perdure(args);
    assert!(!out.status.success(), "perdure {args:?} should fail");
    let err = String::from_utf8(out.stderr).expect("utf8");
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    assert!(err.starts_with("perdure: "), "{err}");
    err
}

pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(store: &str) -> (Serve, String) {
    serve_with(store, true)
}

pub fn serve_with(store: &str, samples: bool) -> (Serve, String) {
    let extra: &[&str] = if samples { &["--samples"] } else { &[] };
    let (child, url) = spawn_serve(store, extra);
    (Serve(child), url)
}

/// `perdure serve` on `store` with `extra` arguments, on ports the kernel
/// picks (a test never picks them: a port found free may be taken before
/// the server binds it): the process and its HTTP base URL, read from its
/// startup line.
pub fn spawn_serve(store: &str, extra: &[&str]) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_perdure"))
        .args([
            "serve",
            "--store",
            store,
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn perdure serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "perdure serve did not come up");
        let line = lines
            .next()
            .expect("perdure serve printed no startup line")
            .expect("read its stderr");
        if let Some(rest) = line.split("HTTP API on http://").nth(1) {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    // Keep reading, so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{addr}"))
}

pub fn wait_status(server: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = json(&["status", id, "--server", server]);
        if st["runtimeStatus"] == want {
            return st;
        }
        assert!(Instant::now() < deadline, "{id} never became {want}: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
