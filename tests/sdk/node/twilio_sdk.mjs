// Drives the official `twilio` package (npm) against Hermod, unchanged: the SDK's
// documented custom `httpClient` option points it at Hermod instead of api.twilio.com.
//
// Run by tests/e2e/twilio.rs with TWILIO_BASE, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
// TWILIO_FROM and CUSTOMER set. Prints READY_FOR_INBOUND when the number's SmsUrl is
// set (the test then sends an SMS to it) and OK at the end; a failed check throws.
import http from "node:http";
import assert from "node:assert/strict";
import twilio from "twilio";

const { TWILIO_BASE: BASE, TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM, CUSTOMER } = process.env;
const REPLY = "Thanks for writing (node)";

// Twilio's documented hook for another HTTP client: same requests, Hermod's host.
class Hermod extends twilio.RequestClient {
  request(opts) {
    return super.request({ ...opts, uri: opts.uri.replace("https://api.twilio.com", BASE) });
  }
}

const callbacks = [];
const inbound = [];
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const params = Object.fromEntries(new URLSearchParams(body));
    const url = `http://127.0.0.1:${server.address().port}${req.url}`;
    const ok = twilio.validateRequest(TOKEN, req.headers["x-twilio-signature"] ?? "", url, params);
    if (!ok) {
      console.error(`bad X-Twilio-Signature on ${req.url}`);
      process.exit(3);
    }
    if (req.url === "/status") {
      callbacks.push([params.MessageSid, params.MessageStatus]);
      res.writeHead(204).end();
    } else {
      inbound.push(params);
      const twiml = new twilio.twiml.MessagingResponse();
      twiml.message(REPLY);
      res.writeHead(200, { "Content-Type": "text/xml" }).end(twiml.toString());
    }
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const hooks = `http://127.0.0.1:${server.address().port}`;

async function wait(what, check, secs = 30) {
  const deadline = Date.now() + secs * 1000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const client = twilio(SID, TOKEN, { httpClient: new Hermod() });

const m = await client.messages.create({ to: CUSTOMER, from: FROM, body: "Node says hi", statusCallback: `${hooks}/status` });
assert.match(m.sid, /^SM[0-9a-f]{32}$/);
assert.equal(m.status, "queued");
assert.equal(m.numSegments, "1");
assert.equal(m.direction, "outbound-api");
assert.ok(m.dateCreated instanceof Date && !isNaN(m.dateCreated));

await wait("a delivered callback", () => callbacks.some(([s, st]) => s === m.sid && st === "delivered"));
const f = await client.messages(m.sid).fetch();
assert.equal(f.status, "delivered");

// Paging across pages.
await client.messages.create({ to: CUSTOMER, from: FROM, body: "two" });
await client.messages.create({ to: CUSTOMER, from: FROM, body: "three" });
const page = await client.messages.page({ pageSize: 2 });
assert.equal(page.instances.length, 2);
const next = await page.nextPage();
assert.ok(next && next.instances.length >= 1);
const listed = await client.messages.list({ limit: 3, pageSize: 2 });
assert.equal(listed.length, 3);
assert.equal(new Set(listed.map((x) => x.sid)).size, 3);

// A scheduled message, canceled.
const at = new Date(Date.now() + 3600_000);
const s = await client.messages.create({ to: CUSTOMER, messagingServiceSid: "MG" + "1".repeat(32), body: "Later", sendAt: at, scheduleType: "fixed" });
assert.equal(s.status, "scheduled");
assert.equal((await client.messages(s.sid).update({ status: "canceled" })).status, "canceled");

// Errors as Twilio's.
await assert.rejects(client.messages.create({ to: CUSTOMER, from: FROM, body: "x".repeat(1601) }), (e) => e.status === 400 && e.code === 21617);
await assert.rejects(client.messages("SM" + "f".repeat(32)).fetch(), (e) => e.status === 404 && e.code === 20404);

// Inbound with a TwiML answer built by the SDK.
const [num] = await client.incomingPhoneNumbers.list({ phoneNumber: FROM });
assert.equal(num.phoneNumber, FROM);
await client.incomingPhoneNumbers(num.sid).update({ smsUrl: `${hooks}/sms` });
console.log("READY_FOR_INBOUND");
await wait("the inbound POST", () => inbound.length === 1, 60);
assert.equal(inbound[0].From, CUSTOMER);
assert.equal(inbound[0].Body, "hello?");
await wait("the TwiML reply", async () =>
  (await client.messages.list({ to: CUSTOMER, limit: 20 })).some((x) => x.body === REPLY && x.direction === "outbound-reply"));

console.log("OK");
server.close();
process.exit(0);
