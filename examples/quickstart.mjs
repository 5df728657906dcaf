// Hermod quickstart in Node.js (18 or newer, no packages).
//
// Receives webhooks on a local port, subscribes to message.delivered, sends an SMS and
// verifies the signature of the webhook that reports it delivered. Run it beside
// `hermod demo`, which writes HERMOD_URL and HERMOD_API_KEY to hermod-data/demo.env:
//
//     source hermod-data/demo.env && node examples/quickstart.mjs
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const URL = process.env.HERMOD_URL;
const KEY = process.env.HERMOD_API_KEY;

async function api(method, path, body) {
  const res = await fetch(URL + path, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

// Hermod-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
function verify(secret, header, body, toleranceSecs = 300) {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2)));
  const t = Number(parts.t);
  const want = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  const got = Buffer.from(parts.v1 ?? "", "hex");
  return (
    Math.abs(Date.now() / 1000 - t) <= toleranceSecs &&
    got.length === want.length &&
    timingSafeEqual(got, want)
  );
}

const received = [];
let wake = () => {};
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    received.push({ header: req.headers["hermod-signature"] ?? "", body: Buffer.concat(chunks) });
    res.writeHead(204).end();
    wake();
  });
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const hookUrl = `http://127.0.0.1:${server.address().port}/hermod`;

const endpoint = await api("POST", "/v1/webhook-endpoints", { url: hookUrl, events: ["message.delivered"] });
try {
  const msg = await api("POST", "/v1/messages", { to: "+447911123456", channels: ["sms"], text: "Hello from Node" });
  console.log("sent", msg.id, msg.status);
  const deadline = Date.now() + 60_000;
  let done = false;
  while (!done) {
    if (Date.now() > deadline) throw new Error("no webhook within 60 s");
    const next = received.shift();
    if (!next) {
      await new Promise((ok) => { wake = ok; setTimeout(ok, 500); });
      continue;
    }
    const event = JSON.parse(next.body);
    if (event.message_id !== msg.id) continue;
    if (!verify(endpoint.secret, next.header, next.body)) throw new Error("a webhook with a bad signature");
    console.log("verified", event.type, "for", event.message_id);
    done = true;
  }
} finally {
  await api("DELETE", `/v1/webhook-endpoints/${endpoint.id}`);
  server.close();
}
