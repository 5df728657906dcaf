#!/usr/bin/env python3
"""Soak run: mixed traffic through `hermod serve` for a while, with faults, then checks.

    python3 scripts/soak.py [--minutes 30] [--rate 20] [--kill-every 180] [--drop-every 3000]

Starts, on loopback, Hermod's SMSC simulator (receipts without user_message_reference,
the connection dropped every --drop-every submits), its RBM simulator (some phones
RCS-capable, some switched off, the rest SMS only), an app device, a webhook receiver
that fails one POST in five, and `hermod serve` (release build, embedded SQLite). It
sends --rate messages per second: SMS; RCS to capable phones; RCS to phones that are
off (fallback to SMS after 5 s); RCS to phones without RCS (SMS at once); app (SMS
after 10 s); batches of five SMS. Every request carries an Idempotency-Key and is
retried until answered, so a request cut by a crash is never lost or doubled. The
server is killed with SIGKILL every --kill-every seconds and started again.

At the end it waits for the traffic to settle and checks: every accepted message is in
a final state; the SMSC saw no submit twice (each message has its own text); every
delivered or read message's receipt reached the webhook; RSS and database growth per
message stayed bounded (second half no worse than 1.5x the first); `hermod audit
verify` passes. Prints a report; exits 1 if a check fails. Standard library only.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "hermod")
FINAL = {"delivered", "read", "failed", "expired", "rejected", "canceled", "undeliverable"}


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, key=None, headers=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


class Receiver:
    """The customer's webhook endpoint: a share of POSTs (--webhook-fail) fail with 500."""

    def __init__(self, fail_share):
        self.lock = threading.Lock()
        self.events = {}  # message_id -> set of event types
        self.seen_ids = set()
        self.posts = 0
        self.failed = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts += 1
                    fail = random.random() < fail_share
                    if fail:
                        receiver.failed += 1
                if fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    ev = json.loads(body)
                except ValueError:
                    ev = {}
                for e in ev if isinstance(ev, list) else [ev]:
                    with receiver.lock:
                        receiver.seen_ids.add(e.get("id"))
                        receiver.events.setdefault(e.get("message_id"), set()).add(e.get("type"))
                self.send_response(200)
                self.end_headers()

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Soak:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="hermod-soak-")
        self.procs = {}
        self.lock = threading.Lock()
        self.accepted = []  # message ids
        self.requests = 0
        self.retries = 0
        self.refused = []  # 4xx answers
        self.kills = 0
        self.samples = []  # (t, rss_kib, db_bytes, accepted)
        self.stop = threading.Event()
        self.api = free_port()
        self.base = f"http://127.0.0.1:{self.api}"

    def log(self, what):
        print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)

    def spawn(self, name, args, env=None):
        out = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(
            args, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.procs[name] = p
        return p

    def start(self):
        a = self.a
        self.smsc_port, self.smsc_admin = free_port(), free_port()
        self.spawn("smsc", [BIN, "sim", "smsc", "--listen", f"127.0.0.1:{self.smsc_port}",
                            "--system-id", "soak", "--password", "pw",
                            "--receipt-style", "no-user-ref", "--drop-every", str(a.drop_every),
                            "--admin", f"127.0.0.1:{self.smsc_admin}"])
        self.rbm_port = free_port()
        self.spawn("rbm", [BIN, "sim", "rbm", "--listen", f"127.0.0.1:{self.rbm_port}",
                           "--agent-id", "soak@rbm.goog", "--client-token", "soak-token",
                           "--webhook", f"{self.base}/v1/webhooks/rbm/soak",
                           "--delivery-delay-ms", "300", "--read-delay-ms", "800"])
        self.receiver = Receiver(a.webhook_fail)
        self.wait_for(f"http://127.0.0.1:{self.smsc_admin}/stats", "the SMSC simulator")
        self.wait_for(f"http://127.0.0.1:{self.rbm_port}/sim/stats", "the RBM simulator")
        self.rcs_on = [f"+4477009{n:05d}" for n in range(10000, 10020)]
        self.rcs_off = [f"+4477009{n:05d}" for n in range(20000, 20005)]
        self.sms_only = [f"+4477009{n:05d}" for n in range(30000, 30200)]
        self.app_user = "+447700940000"
        for p in self.rcs_on:
            http("POST", f"http://127.0.0.1:{self.rbm_port}/sim/devices", {"phone": p, "online": True})
        for p in self.rcs_off:
            http("POST", f"http://127.0.0.1:{self.rbm_port}/sim/devices", {"phone": p, "online": False})
        self.config = os.path.join(self.dir, "hermod.toml")
        base_cfg = f'''listen = "127.0.0.1:{self.api}"
data_dir = "{self.dir}/data"
api_key_pepper = "soak-pepper"
admin_token = "soak-admin"
[api]
rate_limit_per_sec = 0.0
[smpp]
url = "smpp://soak:pw@127.0.0.1:{self.smsc_port}"
[webhooks]
allow_private = ["127.0.0.1/32"]
'''
        with open(self.config, "w") as f:
            f.write(base_cfg)
        out = subprocess.run([BIN, "keys", "create", "--tenant", "soak", "--config", self.config],
                             capture_output=True, text=True, check=True).stdout
        self.tenant = next(l.split(": ")[1] for l in out.splitlines() if l.startswith("Tenant"))
        self.key = next(l.split(": ")[1] for l in out.splitlines() if l.startswith("API key"))
        with open(os.path.join(self.dir, "rbm-sim-service-account.json")) as f:
            sa = f.read()
        with open(self.config, "w") as f:
            f.write(base_cfg + f'''
[[rcs.agents]]
name = "soak"
agent_id = "soak@rbm.goog"
tenant = "{self.tenant}"
base_url = "http://127.0.0.1:{self.rbm_port}"
client_token = "soak-token"
service_account_json = {json.dumps(sa)}
''')
        self.start_server()
        code, ep = http("POST", f"{self.base}/v1/webhook-endpoints",
                        {"url": f"http://127.0.0.1:{self.receiver.port}/hook", "events": ["*"]}, self.key)
        assert code == 201, (code, ep)
        self.start_device()

    def wait_for(self, url, what, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except Exception:
                time.sleep(0.2)
        sys.exit(f"{what} did not come up (logs in {self.dir})")

    def start_server(self):
        self.spawn("server", [BIN, "serve", "--config", self.config],
                   env={"RUST_LOG": "warn"})
        self.wait_for(f"{self.base}/healthz", "hermod serve", 60)

    def start_device(self):
        self.spawn("device", [BIN, "sim", "device", "--url", self.base, "--api-key", self.key,
                              "--recipient", self.app_user, "--read-delay-ms", "500"])

    def rss_kib(self):
        p = self.procs.get("server")
        try:
            with open(f"/proc/{p.pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        except (OSError, StopIteration, AttributeError):
            return 0

    def db_bytes(self):
        d = os.path.join(self.dir, "data")
        return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                   if f.startswith("hermod.db"))

    # Traffic -------------------------------------------------------------------------

    def one_request(self, n):
        r = random.random()
        path, body = "/v1/messages", None
        if r < 0.50:
            body = {"to": random.choice(self.sms_only), "channels": ["sms"], "text": f"soak {n} sms"}
        elif r < 0.65:
            body = {"to": random.choice(self.rcs_on), "channels": ["rcs", "sms"], "text": f"soak {n} rcs"}
        elif r < 0.72:
            body = {"to": random.choice(self.rcs_off), "channels": ["rcs", "sms"],
                    "text": f"soak {n} rcs-off", "fallback": {"after": "5s"}}
        elif r < 0.80:
            body = {"to": random.choice(self.sms_only), "channels": ["rcs", "sms"], "text": f"soak {n} no-rcs"}
        elif r < 0.90:
            body = {"to": self.app_user, "channels": ["app", "sms"], "text": f"soak {n} app",
                    "fallback": {"after": "10s"}}
        else:
            path = "/v1/messages/batch"
            body = {"messages": [{"to": random.choice(self.sms_only), "channels": ["sms"],
                                  "text": f"soak {n}.{i} batch"} for i in range(5)]}
        key = f"soak-{n}"
        while True:
            try:
                code, v = http("POST", self.base + path, body, self.key, {"Idempotency-Key": key})
            except Exception:
                code, v = None, None
            if code in (200, 202):
                break
            if code is not None and 400 <= code < 500 and code != 429:
                with self.lock:
                    self.refused.append((code, v))
                return
            with self.lock:
                self.retries += 1
            time.sleep(0.5)
        ids = [v["id"]] if path == "/v1/messages" else [
            i["message"]["id"] for i in v.get("results", []) if i.get("message")]
        with self.lock:
            self.accepted.extend(ids)
            self.requests += 1

    def load(self, seconds):
        pool = ThreadPoolExecutor(max_workers=16)
        start, n = time.time(), 0
        while time.time() - start < seconds:
            due = start + n / self.a.rate
            if due > time.time():
                time.sleep(due - time.time())
            pool.submit(self.one_request, n)
            n += 1
        pool.shutdown(wait=True)

    def killer(self):
        while not self.stop.wait(self.a.kill_every):
            self.log("kill -9 hermod serve")
            self.procs["server"].send_signal(signal.SIGKILL)
            self.procs["server"].wait()
            self.kills += 1
            time.sleep(1)
            self.start_server()
            if self.procs["device"].poll() is not None:
                self.start_device()

    def sampler(self):
        t0 = time.time()
        while not self.stop.wait(10):
            with self.lock:
                n = len(self.accepted)
            self.samples.append((time.time() - t0, self.rss_kib(), self.db_bytes(), n))

    # Checks --------------------------------------------------------------------------

    def statuses(self):
        def get(mid):
            for _ in range(20):
                try:
                    code, v = http("GET", f"{self.base}/v1/messages/{mid}", key=self.key)
                    if code == 200:
                        return mid, v["status"]
                except Exception:
                    pass
                time.sleep(0.5)
            return mid, "unknown"

        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(pool.map(get, list(self.accepted)))

    def run(self):
        a = self.a
        self.log(f"soak for {a.minutes} min at {a.rate} requests/s in {self.dir}")
        self.start()
        threads = [threading.Thread(target=self.killer, daemon=True),
                   threading.Thread(target=self.sampler, daemon=True)]
        for t in threads:
            t.start()
        self.load(a.minutes * 60)
        self.stop.set()
        for t in threads:
            t.join()
        self.log(f"traffic over: {self.requests} requests, {len(self.accepted)} messages accepted; settling")
        deadline = time.time() + a.settle
        st = {}
        while time.time() < deadline:
            st = self.statuses()
            open_ = [m for m, s in st.items() if s not in FINAL]
            if not open_:
                break
            self.log(f"{len(open_)} not final yet")
            time.sleep(10)
        # Let the webhook stage catch up with the last receipts.
        wanted = {m: s for m, s in st.items() if s in ("delivered", "read")}
        missing = list(wanted)
        end = time.time() + max(120, self.a.settle)
        while time.time() < end:
            with self.receiver.lock:
                missing = [m for m, s in wanted.items()
                           if f"message.{s}" not in self.receiver.events.get(m, set())]
            if not missing:
                break
            time.sleep(5)
        smsc = http("GET", f"http://127.0.0.1:{self.smsc_admin}/stats")[1]
        audit = subprocess.run([BIN, "audit", "verify", "--config", self.config],
                               capture_output=True, text=True)
        return self.report(st, missing, smsc, audit)

    def report(self, st, missing, smsc, audit):
        by = {}
        for s in st.values():
            by[s] = by.get(s, 0) + 1
        not_final = [m for m, s in st.items() if s not in FINAL]
        half = len(self.samples) // 2
        first, second = self.samples[:half], self.samples[half:]

        def growth(rows):
            if len(rows) < 2 or rows[-1][3] == rows[0][3]:
                return 0.0
            return (rows[-1][2] - rows[0][2]) / (rows[-1][3] - rows[0][3])

        rss = [s[1] for s in self.samples if s[1]]
        rss_first = max((s[1] for s in first if s[1]), default=0)
        rss_second = max((s[1] for s in second if s[1]), default=0)
        g1, g2 = growth(first), growth(second)
        checks = {
            "every accepted message final": not not_final,
            "no submit repeated at the SMSC": smsc.get("repeated", 1) == 0,
            "every delivered/read receipt at the webhook": not missing,
            "RSS bounded (2nd half max <= 1.5x 1st half max + 20 MiB)":
                rss_second <= 1.5 * rss_first + 20 * 1024,
            "DB growth per message bounded (2nd half <= 1.5x 1st half + 256 B)": g2 <= 1.5 * g1 + 256,
            "audit chain verifies": audit.returncode == 0,
            "no request refused": not self.refused,
        }
        print("\n== soak report")
        print(f"duration {self.a.minutes} min, rate {self.a.rate}/s, kills {self.kills}, "
              f"requests {self.requests} (retried {self.retries}), messages {len(self.accepted)}")
        print(f"final statuses: {json.dumps(by, sort_keys=True)}")
        print(f"SMSC: {json.dumps(smsc, sort_keys=True)}")
        print(f"webhook: {self.receiver.posts} POSTs, {self.receiver.failed} answered 500, "
              f"{len(self.receiver.seen_ids)} distinct events; receipts missing {len(missing)}")
        if rss:
            print(f"RSS MiB: min {min(rss) / 1024:.0f}, 1st half max {rss_first / 1024:.0f}, "
                  f"2nd half max {rss_second / 1024:.0f}")
        if self.samples:
            print(f"DB: {self.samples[-1][2] / 1048576:.1f} MiB at the end; "
                  f"{g1:.0f} B/message in the 1st half, {g2:.0f} B/message in the 2nd")
        print(f"audit verify: {audit.stdout.strip().splitlines()[-1] if audit.stdout.strip() else audit.stderr.strip()}")
        if self.refused:
            print(f"refused: {self.refused[:3]}")
        if not_final:
            print(f"not final (first 5): {[(m, st[m]) for m in not_final[:5]]}")
        if missing:
            print(f"receipts missing (first 5): {missing[:5]}")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        print(f"logs and data: {self.dir}")
        return all(checks.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20, help="requests per second")
    ap.add_argument("--kill-every", type=float, default=180, help="seconds between SIGKILLs")
    ap.add_argument("--drop-every", type=int, default=3000, help="SMSC drops the connection every N submits")
    ap.add_argument("--settle", type=float, default=300, help="seconds to wait for final states")
    ap.add_argument("--webhook-fail", type=float, default=0.2, help="share of webhook POSTs answered 500")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    s = Soak(a)
    ok = False
    try:
        ok = s.run()
    finally:
        for p in s.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in s.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
