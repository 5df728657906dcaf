#!/usr/bin/env node
// npm `smpp` (node-smpp) as an SMPP client (ESME) of Hermod's SMPP server, for
// tests/e2e/smpp_server.rs. usage: smpp_client.js MODE [N]
// env: SMPP_PORT, SMPP_SYSTEM_ID, SMPP_PASSWORD, SMPP_FROM, SMPP_TO, SMPP_CA (TLS)
// Modes print their result as one JSON line (`burst` also prints `ACK <id> <dest>` lines
// as submit_sm_resp come):
//   separate      transmitter and receiver binds: 3 submits, receipts on the receiver
//   submit N      a transmitter submits N (receipts requested) and unbinds
//   receive N     a receiver collects N receipts (or what came in SMPP_WAIT_S, 60 s)
//   mo            a receiver prints READY and waits for one inbound deliver_sm
//   throttle N    N submits at once on a transceiver: the statuses
//   ops           scheduled submit, query_sm, replace_sm, cancel_sm, submit_multi
//   burst N       N submits (window 20) to distinct numbers until the server goes away
const fs = require('fs');
const smpp = require('smpp');

const port = +process.env.SMPP_PORT;
const creds = { system_id: process.env.SMPP_SYSTEM_ID, password: process.env.SMPP_PASSWORD };
const FROM = process.env.SMPP_FROM;
const TO = process.env.SMPP_TO;
const [mode, nArg] = process.argv.slice(2);
const N = +(nArg || 0);

function connect() {
  // SMPP_CA: over TLS (ssmpp://), trusting that CA.
  const s = process.env.SMPP_CA
    ? smpp.connect({ url: 'ssmpp://127.0.0.1:' + port, ca: [fs.readFileSync(process.env.SMPP_CA)] })
    : smpp.connect({ host: '127.0.0.1', port });
  s.on('error', (e) => {
    if (mode === 'burst') {
      console.log(JSON.stringify({ closed: e.message }));
      process.exit(0);
    }
    console.error('smpp error', e.message);
    process.exit(1);
  });
  return s;
}

function bind(s, kind) {
  return new Promise((resolve, reject) => {
    s[kind](creds, (pdu) => (pdu.command_status === 0 ? resolve(pdu) : reject(new Error('bind ' + pdu.command_status))));
  });
}

const call = (s, cmd, fields) => new Promise((resolve) => s[cmd](fields, resolve));

const msg = (text, extra) => Object.assign({
  source_addr_ton: 1, source_addr_npi: 1, source_addr: FROM,
  dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: TO,
  registered_delivery: 1, short_message: text,
}, extra || {});

function collect(s, receipts, mo) {
  s.on('deliver_sm', (pdu) => {
    s.send(pdu.response());
    if (pdu.esm_class & 0x04) {
      receipts.push({ id: pdu.receipted_message_id, state: pdu.message_state,
        text: pdu.short_message.message, source: pdu.source_addr, destination: pdu.destination_addr });
    } else {
      mo.push({ from: pdu.source_addr, to: pdu.destination_addr, text: pdu.short_message.message,
        data_coding: pdu.data_coding });
    }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, secs) {
  const end = Date.now() + secs * 1000;
  while (!cond() && Date.now() < end) await sleep(50);
}

async function main() {
  const out = {};
  if (mode === 'separate') {
    const tx = connect();
    const rx = connect();
    const receipts = []; const mo = [];
    collect(rx, receipts, mo);
    await bind(rx, 'bind_receiver');
    await bind(tx, 'bind_transmitter');
    out.ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(tx, 'submit_sm', msg('Receipt to the receiver ' + i));
      out.ids.push(r.message_id);
    }
    // A receiver cannot submit.
    out.receiver_submit = (await call(rx, 'submit_sm', msg('not here'))).command_status;
    await waitFor(() => out.ids.every((id) => receipts.some((r) => r.id === id)), 60);
    out.receipts = receipts;
  } else if (mode === 'submit') {
    const tx = connect();
    await bind(tx, 'bind_transmitter');
    out.ids = [];
    for (let i = 0; i < N; i++) {
      const r = await call(tx, 'submit_sm', msg('Held receipt ' + i));
      out.ids.push(r.message_id);
    }
    await call(tx, 'unbind', {});
  } else if (mode === 'receive') {
    const rx = connect();
    const receipts = []; const mo = [];
    collect(rx, receipts, mo);
    await bind(rx, 'bind_receiver');
    await waitFor(() => receipts.length >= N, +(process.env.SMPP_WAIT_S || 60));
    // Anything sent twice would come now.
    await sleep(500);
    out.receipts = receipts;
    out.mo = mo;
  } else if (mode === 'mo') {
    const rx = connect();
    const receipts = []; const mo = [];
    collect(rx, receipts, mo);
    await bind(rx, 'bind_receiver');
    console.log('READY');
    await waitFor(() => mo.length >= 1, 60);
    out.mo = mo;
  } else if (mode === 'throttle') {
    const s = connect();
    await bind(s, 'bind_transceiver');
    const all = [];
    for (let i = 0; i < N; i++) all.push(call(s, 'submit_sm', msg('Throttled ' + i, { registered_delivery: 0 })));
    const rs = await Promise.all(all);
    out.statuses = rs.map((r) => r.command_status);
  } else if (mode === 'ops') {
    const s = connect();
    await bind(s, 'bind_transceiver');
    const later = '000001000000000R'; // an hour from now
    const r = await call(s, 'submit_sm', msg('Original text', { schedule_delivery_time: later }));
    out.scheduled = { status: r.command_status, id: r.message_id };
    const q1 = await call(s, 'query_sm', { message_id: r.message_id, source_addr: FROM });
    out.query_scheduled = { status: q1.command_status, state: q1.message_state };
    const rep = await call(s, 'replace_sm', { message_id: r.message_id, source_addr: FROM,
      short_message: 'Replaced text' });
    out.replace = rep.command_status;
    const can = await call(s, 'cancel_sm', { message_id: r.message_id, source_addr: FROM,
      destination_addr: TO });
    out.cancel = can.command_status;
    const q2 = await call(s, 'query_sm', { message_id: r.message_id, source_addr: FROM });
    out.query_canceled = { status: q2.command_status, state: q2.message_state, final_date: q2.final_date };
    const again = await call(s, 'cancel_sm', { message_id: r.message_id, source_addr: FROM,
      destination_addr: TO });
    out.cancel_again = again.command_status;
    const replaceLate = await call(s, 'replace_sm', { message_id: r.message_id, source_addr: FROM,
      short_message: 'Too late' });
    out.replace_canceled = replaceLate.command_status;
    const m = await call(s, 'submit_multi', {
      source_addr_ton: 1, source_addr_npi: 1, source_addr: FROM, registered_delivery: 0,
      dest_address: [
        { dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: TO },
        { dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: '447911900002' },
        { dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: 'nope' },
      ],
      short_message: 'To several',
    });
    out.multi = { status: m.command_status, id: m.message_id,
      unsuccess: (m.unsuccess_sme || []).map((u) => [u.destination_addr, u.error_status_code]) };
    const bogus = await call(s, 'enquire_link', {});
    out.enquire_link = bogus.command_status;
  } else if (mode === 'burst') {
    const s = connect();
    s.on('close', () => { console.log(JSON.stringify({ closed: 'close' })); process.exit(0); });
    await bind(s, 'bind_transceiver');
    let sent = 0; let out_ = 0;
    await new Promise(() => {
      const pump = () => {
        while (out_ < 20 && sent < N) {
          const dest = '4479' + String(10000000 + sent).slice(1).padStart(8, '0');
          sent++; out_++;
          s.submit_sm(msg('Burst ' + dest, { destination_addr: dest }), (r) => {
            out_--;
            if (r.command_status === 0) console.log('ACK ' + r.message_id + ' ' + dest);
            pump();
          });
        }
      };
      pump();
    });
  } else {
    console.error('unknown mode ' + mode);
    process.exit(2);
  }
  // Exit once the line is written (a pipe takes large writes asynchronously).
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
