"""PyPI smpplib as an SMPP client (ESME) of Hermod's SMPP server (tests/e2e/smpp_server.rs).

usage: smpp_client.py HOST PORT SYSTEM_ID PASSWORD FROM TO

Binds as a transceiver and submits in every encoding and concatenation scheme, then a
data_sm, the refusals, and a query_sm; waits for the receipts. Prints one JSON object:
{"sent": [{"case", "id", "text"}], "receipts": {id: stat}, "statuses": {case: status},
 "query": {...}}.
"""

import json
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.gsm
import smpplib.smpp

host, port, system_id, password, sender, to = sys.argv[1:7]
port = int(port)

c = smpplib.client.Client(host, port, timeout=30, allow_unknown_opt_params=True)
receipts = {}
received = []


def on_deliver(pdu):
    received.append(pdu)
    if pdu.receipted_message_id:
        receipts[pdu.receipted_message_id.decode()] = {
            "text": pdu.short_message.decode(),
            "state": pdu.message_state,
            "esm_class": pdu.esm_class,
        }


c.set_message_received_handler(on_deliver)
c.connect()
c.bind_transceiver(system_id=system_id, password=password)


def roundtrip(command, **fields):
    """Sends one PDU and reads until its response (answering deliver_sm meanwhile)."""
    p = smpplib.smpp.make_pdu(command, client=c, **fields)
    c.send_pdu(p)
    while True:
        r = c.read_pdu()
        if r.command == "deliver_sm":
            c._message_received(r)
            continue
        if r.command == "enquire_link":
            c._enquire_link_received(r)
            continue
        if r.sequence == p.sequence:
            return r


def submit(**fields):
    base = dict(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=sender,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=to,
        registered_delivery=1,
    )
    base.update(fields)
    return roundtrip("submit_sm", **base)


sent = []
statuses = {}


def keep(case, text, resps):
    ids = {r.message_id.decode() for r in resps}
    for r in resps:
        statuses.setdefault(case, r.status)
        if r.status != 0:
            statuses[case] = r.status
    assert len(ids) == 1, (case, ids)
    sent.append({"case": case, "id": ids.pop(), "text": text})


# One part in each encoding.
cases = [
    ("gsm", "Hello @ home: 10€ [ok]", smpplib.consts.SMPP_ENCODING_DEFAULT),
    ("latin1", "Grüße, señor", smpplib.consts.SMPP_ENCODING_ISO88591),
    ("ucs2", "Привет 👋", smpplib.consts.SMPP_ENCODING_ISO10646),
]
for case, text, coding in cases:
    if coding == smpplib.consts.SMPP_ENCODING_DEFAULT:
        data = smpplib.gsm.gsm_encode(text)
    elif coding == smpplib.consts.SMPP_ENCODING_ISO88591:
        data = text.encode("latin-1")
    else:
        data = text.encode("utf-16-be")
    keep(case, text, [submit(short_message=data, data_coding=coding)])

# UDH concatenation (smpplib's own splitting), GSM and UCS-2.
for case, text in [
    ("udh_gsm", "Your parcel is on its way. " * 9),
    ("udh_ucs2", "Ваша посылка в пути. " * 6),
]:
    parts, coding, esm = smpplib.gsm.make_parts(text)
    keep(
        case,
        text,
        [submit(short_message=p, data_coding=coding, esm_class=esm) for p in parts],
    )

# SAR TLVs: three parts, sent last part first.
sar_text = "Segment one. Segment two. Segment three."
chunks = [sar_text[0:13], sar_text[13:26], sar_text[26:]]
resps = []
for seq in (3, 1, 2):
    resps.append(
        submit(
            short_message=chunks[seq - 1].encode(),
            data_coding=0,
            sar_msg_ref_num=0x1234,
            sar_total_segments=3,
            sar_segment_seqnum=seq,
        )
    )
keep("sar", sar_text, resps)

# message_payload: the whole text in the TLV, short_message empty.
payload_text = "A long message in message_payload. " * 6
keep(
    "payload",
    payload_text,
    [submit(short_message=b"", data_coding=0, message_payload=smpplib.gsm.gsm_encode(payload_text))],
)

# Binary (8-bit data): the bytes in hex on the API, sent over SMS only; a long one
# concatenated by UDH.
keep("binary", "0102ff", [submit(short_message=b"\x01\x02\xff", data_coding=4)])
big = bytes(range(200))
keep(
    "binary_udh",
    big.hex(),
    [
        submit(short_message=b"\x05\x00\x03\x07\x02" + bytes([n]) + chunk, data_coding=4, esm_class=0x40)
        for n, chunk in ((1, big[:134]), (2, big[134:]))
    ],
)

# data_sm carries its text in message_payload too.
r = roundtrip(
    "data_sm",
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr=sender,
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr=to,
    esm_class=0,
    registered_delivery=1,
    data_coding=0,
    message_payload=smpplib.gsm.gsm_encode("Sent as data_sm"),
)
statuses["data_sm"] = r.status
sent.append({"case": "data_sm", "id": r.message_id.decode(), "text": "Sent as data_sm"})

# Refusals.
statuses["bad_destination"] = submit(destination_addr="not-a-number", short_message=b"x").status
statuses["foreign_sender"] = submit(
    source_addr_ton=5, source_addr="NotOurs", short_message=b"x"
).status
statuses["unknown_coding"] = submit(short_message=b"\x01\x02", data_coding=5).status
statuses["bad_validity"] = submit(short_message=b"x", validity_period="261307103000004+").status
# A field of the wrong size: the PDU does not decode (generic_nack), the bind stays.
statuses["malformed"] = submit(short_message=b"x", validity_period="2612071030").status
statuses["after_malformed"] = submit(short_message=b"still bound").status

# query_sm of the first message, once its receipt came.
deadline = time.time() + 60
want = {s["id"] for s in sent}
while time.time() < deadline and not want <= set(receipts):
    c.read_once()
q = roundtrip("query_sm", message_id=sent[0]["id"], source_addr_ton=1, source_addr=sender)
query = {
    "status": q.status,
    "message_id": q.message_id.decode() if q.message_id else "",
    "state": q.message_state,
    "final_date": q.final_date.decode() if q.final_date else "",
}
unknown = roundtrip("query_sm", message_id="msg_" + "0" * 32, source_addr_ton=1, source_addr=sender)
query["unknown_status"] = unknown.status
c.unbind()
c.disconnect()
print(
    json.dumps(
        {"sent": sent, "receipts": receipts, "statuses": statuses, "query": query}
    )
)
