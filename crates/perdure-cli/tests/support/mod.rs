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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_perdure"))
        .args([
            "serve",
            "--store",
            store,
            "--http",
            &addr,
            "--grpc",
            "127.0.0.1:0",
        ])
        .args(if samples { &["--samples"][..] } else { &[][..] })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn perdure serve");
    let guard = Serve(child);
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "perdure serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (guard, url)
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
