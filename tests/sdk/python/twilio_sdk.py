"""Drives the official `twilio` package (PyPI) against Hermod, unchanged: the SDK's
documented custom HTTP client hook points it at Hermod instead of api.twilio.com.

Run by tests/e2e/twilio.rs with TWILIO_BASE, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
TWILIO_FROM and CUSTOMER set. Prints READY_FOR_INBOUND when the number's SmsUrl is set
(the test then sends an SMS to it from the SMSC simulator) and OK at the end; any
failed check raises.
"""

import datetime
import http.server
import os
import sys
import threading
import time
import urllib.parse

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

BASE = os.environ["TWILIO_BASE"]
SID = os.environ["TWILIO_ACCOUNT_SID"]
TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
FROM = os.environ["TWILIO_FROM"]
CUSTOMER = os.environ["CUSTOMER"]
REPLY = "Thanks for writing (python)"


class Hermod(TwilioHttpClient):
    """Twilio's documented hook for another HTTP client: same requests, Hermod's host."""

    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://api.twilio.com", BASE), *args, **kwargs)


validator = RequestValidator(TOKEN)
callbacks = []  # (MessageSid, MessageStatus)
inbound = []
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        signed = validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
        assert signed, f"bad X-Twilio-Signature on {self.path}: {params}"
        with lock:
            if self.path == "/status":
                assert params["AccountSid"] == SID and params["ApiVersion"] == "2010-04-01", params
                assert params["SmsSid"] == params["MessageSid"], params
                callbacks.append((params["MessageSid"], params["MessageStatus"]))
            elif self.path == "/sms":
                inbound.append(params)
        if self.path == "/sms":
            resp = MessagingResponse()
            resp.message(REPLY)
            body = str(resp).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
        else:
            body = b""
            self.send_response(204)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def wait(what, check, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
hooks = f"http://127.0.0.1:{server.server_port}"

client = Client(SID, TOKEN, http_client=Hermod())

# Create, with a status callback.
m = client.messages.create(to=CUSTOMER, from_=FROM, body="Your order shipped", status_callback=f"{hooks}/status")
assert m.sid.startswith("SM") and len(m.sid) == 34, m.sid
assert m.status == "queued", m.status
assert m.direction == "outbound-api" and m.num_segments == "1" and m.num_media == "0"
assert m.account_sid == SID and m.to == CUSTOMER and m.from_ == FROM
assert isinstance(m.date_created, datetime.datetime), m.date_created
assert m.uri == f"/2010-04-01/Accounts/{SID}/Messages/{m.sid}.json", m.uri

# Status callbacks, each validated with the SDK's RequestValidator.
wait("a delivered callback", lambda: (m.sid, "delivered") in callbacks)
statuses = [s for sid, s in callbacks if sid == m.sid]
# Like Twilio's, callbacks may arrive out of order (each is its own POST).
assert {"queued", "sent", "delivered"} <= set(statuses), statuses

f = client.messages(m.sid).fetch()
assert f.status == "delivered" and f.body == "Your order shipped", (f.status, f.body)
assert isinstance(f.date_sent, datetime.datetime), f.date_sent

# Segments follow the encoding: 161 GSM characters take two parts, 71 UCS-2 ones two.
assert client.messages.create(to=CUSTOMER, from_=FROM, body="a" * 161).num_segments == "2"
assert client.messages.create(to=CUSTOMER, from_=FROM, body="ж" * 71).num_segments == "2"

# Paging: the SDK follows next_page_uri.
first = client.messages.page(page_size=2)
first_items = list(first)
assert len(first_items) == 2, first_items
second = first.next_page()
assert second is not None
second_items = list(second)
assert len(second_items) >= 1
seen = [x.sid for x in first_items] + [x.sid for x in second_items]
assert len(set(seen)) == len(seen), seen
assert len(client.messages.list(limit=3, page_size=2)) == 3
today = datetime.datetime.now(datetime.timezone.utc).date()
assert m.sid in [x.sid for x in client.messages.list(to=CUSTOMER, from_=FROM, date_sent=today)]
assert client.messages.list(date_sent_before=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)) == []

# A scheduled message, canceled.
at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
s = client.messages.create(to=CUSTOMER, messaging_service_sid="MG" + "0" * 32, body="Reminder", send_at=at, schedule_type="fixed")
assert s.status == "scheduled" and s.messaging_service_sid == "MG" + "0" * 32, (s.status, s.messaging_service_sid)
c = client.messages(s.sid).update(status="canceled")
assert c.status == "canceled", c.status

# Errors as Twilio's, raised by the SDK.
try:
    client.messages.create(to="not a number", from_=FROM, body="x")
    raise AssertionError("an invalid To was accepted")
except TwilioRestException as e:
    assert e.status == 400 and e.code == 21211, (e.status, e.code)
try:
    client.messages("SM" + "0" * 32).fetch()
    raise AssertionError("a missing message was found")
except TwilioRestException as e:
    assert e.status == 404 and e.code == 20404, (e.status, e.code)
try:
    Client(SID, "0" * 32, http_client=Hermod()).messages(m.sid).fetch()
    raise AssertionError("a wrong auth token was accepted")
except TwilioRestException as e:
    assert e.status == 401 and e.code == 20003, (e.status, e.code)

# Inbound: the number's SmsUrl gets Twilio's signed POST; the TwiML answer is sent.
numbers = client.incoming_phone_numbers.list(phone_number=FROM)
assert len(numbers) == 1 and numbers[0].phone_number == FROM, numbers
n = numbers[0].update(sms_url=f"{hooks}/sms")
assert n.sms_url == f"{hooks}/sms" and n.sid.startswith("PN"), n.sms_url
print("READY_FOR_INBOUND", flush=True)
wait("the inbound POST", lambda: len(inbound) == 1, secs=60)
got = inbound[0]
assert got["From"] == CUSTOMER and got["To"] == FROM and got["Body"] == "hello?", got
assert got["MessageSid"].startswith("SM") and got["NumSegments"] == "1", got
wait("the TwiML reply", lambda: any(x.body == REPLY and x.direction == "outbound-reply" for x in client.messages.list(to=CUSTOMER, limit=20)))

# Redaction, then deletion.
r = client.messages(m.sid).update(body="")
assert r.body == "" and r.status == "delivered", (r.body, r.status)
assert client.messages(m.sid).delete() is True
try:
    client.messages(m.sid).fetch()
    raise AssertionError("a deleted message was found")
except TwilioRestException as e:
    assert e.code == 20404, e.code

print("OK", flush=True)
server.shutdown()
sys.exit(0)
