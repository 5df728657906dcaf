#!/usr/bin/env python3
"""Hermod quickstart in Python (standard library only).

Receives webhooks on a local port, subscribes to message.delivered, sends an SMS and
verifies the signature of the webhook that reports it delivered. Run it beside
`hermod demo`, which writes HERMOD_URL and HERMOD_API_KEY to hermod-data/demo.env:

    source hermod-data/demo.env && python3 examples/quickstart.py
"""
import hashlib
import hmac
import http.server
import json
import os
import queue
import threading
import time
import urllib.request

URL = os.environ["HERMOD_URL"]
KEY = os.environ["HERMOD_API_KEY"]


def api(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = resp.read()
        return json.loads(data) if data else None


def verify(secret: str, header: str, body: bytes, tolerance=300) -> bool:
    """Hermod-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= tolerance and hmac.compare_digest(want, parts["v1"])


received = queue.Queue()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.put((self.headers.get("Hermod-Signature", ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
hook_url = f"http://127.0.0.1:{server.server_port}/hermod"

endpoint = api("POST", "/v1/webhook-endpoints", {"url": hook_url, "events": ["message.delivered"]})
secret = endpoint["secret"]
try:
    msg = api("POST", "/v1/messages", {"to": "+447911123456", "channels": ["sms"], "text": "Hello from Python"})
    print("sent", msg["id"], msg["status"])
    deadline = time.time() + 60
    while time.time() < deadline:
        header, body = received.get(timeout=max(0.1, deadline - time.time()))
        event = json.loads(body)
        if event.get("message_id") != msg["id"]:
            continue
        if not verify(secret, header, body):
            raise SystemExit("a webhook with a bad signature")
        print("verified", event["type"], "for", event["message_id"])
        break
    else:
        raise SystemExit("no webhook within 60 s")
finally:
    api("DELETE", f"/v1/webhook-endpoints/{endpoint['id']}")
    server.shutdown()
