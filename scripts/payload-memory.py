#!/usr/bin/env python3
"""Peak memory of `perdure serve` while it takes N parallel starts whose
input is SIZE bytes of JSON (default 8 starts of 16 MiB), over HTTP, on a
fresh SQLite store. Prints the server's resident set before, its peak
(VmHWM) after, and the peak's cost per input byte.

    scripts/payload-memory.py [--bin target/release/perdure] [--starts 8] [--mib 16]
"""
import argparse, concurrent.futures, http.client, os, socket, subprocess, tempfile, time

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/perdure")
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--mib", type=int, default=16)
    a = ap.parse_args()
    port, grpc = free_port(), free_port()
    size = a.mib * 1024 * 1024 - 1024
    body = b'"' + b"x" * (size - 2) + b'"'
    with tempfile.TemporaryDirectory() as d:
        srv = subprocess.Popen([a.bin, "serve", "--store", f"sqlite://{d}/m.db",
                                "--http", f"127.0.0.1:{port}", "--grpc", f"127.0.0.1:{grpc}"],
                               stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            before = kib(srv.pid, "VmRSS")
            def start(i):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                c.request("POST", f"/runtime/webhooks/durabletask/orchestrators/Nobody/big{i}",
                          body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse(); r.read()
                # and read it back: the status with its input
                c.request("GET", f"/runtime/webhooks/durabletask/instances/big{i}")
                s = c.getresponse(); out = s.read()
                return r.status, s.status, len(out)
            with concurrent.futures.ThreadPoolExecutor(a.starts) as ex:
                results = list(ex.map(start, range(a.starts)))
            peak = kib(srv.pid, "VmHWM")
        finally:
            srv.terminate(); srv.wait()
    total = a.starts * size
    print(f"{a.starts} starts of {size} bytes: answers {sorted(set(results))}")
    print(f"resident before {before/1024:.1f} MiB, peak {peak/1024:.1f} MiB, "
          f"peak growth {(peak-before)/1024:.1f} MiB = {(peak-before)*1024/total:.1f}x the inputs")

if __name__ == "__main__":
    main()
