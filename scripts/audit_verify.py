#!/usr/bin/env python3
"""Independent verifier of a Hermod audit export (JSON Lines).

Needs nothing but Python 3 and the `cryptography` package, and the operator's
published Ed25519 public key (GET /v1/audit/public-key). It recomputes the hash chain
from the documented canonical encoding and checks every checkpoint signature:

  entry hash = sha256("hermod-audit-v1\\n" + prev_hash + "\\n" + canonical(entry)).hex()
  canonical  = json.dumps({tenant, seq, at, kind, subject, data}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)
  checkpoint = Ed25519 over "hermod-audit-checkpoint-v1\\n{tenant}\\n{seq}\\n{head_hash}\\n{at}"

Usage: audit_verify.py EXPORT.jsonl --public-key BASE64
(An export of a range, `?from=N`, says so in its header; its first entry's prev_hash
is then taken as given.)
Exit 0 and "OK ..." when everything verifies; exit 1 and "BROKEN seq N: reason" at the
first break (changed, deleted, inserted, reordered, bad_signature, checkpoint_mismatch).
"""
import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64


def canonical(e):
    body = {k: e[k] for k in ("tenant", "seq", "at", "kind", "subject", "data")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev, e):
    msg = ("hermod-audit-v1\n" + prev + "\n" + canonical(e)).encode("utf-8")
    return hashlib.sha256(msg).hexdigest()


def verify(entries, checkpoints, key, first=1):
    """`first`: the export's first sequence number (its header's `from`). A range
    that starts later takes its first entry's prev_hash as given; checkpoints in the
    range anchor it."""
    prev, expected = GENESIS, first
    if first > 1 and entries and entries[0]["seq"] == first:
        prev = entries[0]["prev_hash"]
    for i, e in enumerate(entries):
        if e["seq"] > expected:
            return expected, "deleted"
        if e["seq"] < expected:
            return e["seq"], "reordered"
        if e["prev_hash"] != prev:
            if any(x["hash"] == e["prev_hash"] for x in entries[i + 1:]):
                return e["seq"], "reordered"
            if i > 0 and entries[i - 1]["prev_hash"] == e["prev_hash"]:
                return e["seq"] - 1, "inserted"
            return (e["seq"] - 1 if i > 0 else e["seq"]), "changed"
        if entry_hash(e["prev_hash"], e) != e["hash"]:
            return e["seq"], "changed"
        prev, expected = e["hash"], expected + 1
    for c in checkpoints:
        msg = "hermod-audit-checkpoint-v1\n%s\n%d\n%s\n%d" % (
            c["tenant"], c["seq"], c["head_hash"], c["at"])
        try:
            key.verify(base64.b64decode(c["signature"]), msg.encode("utf-8"))
        except (InvalidSignature, ValueError):
            return c["seq"], "bad_signature"
        idx = c["seq"] - first
        if idx >= len(entries):
            return expected, "deleted"
        if entries[idx]["hash"] != c["head_hash"]:
            return c["seq"], "checkpoint_mismatch"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export")
    ap.add_argument("--public-key", required=True, help="base64 raw Ed25519 public key")
    a = ap.parse_args()
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(a.public_key))
    by_tenant = {}
    first = {}
    with open(a.export, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec["type"] == "header":
                first[rec.get("tenant")] = rec.get("from", 1)
            t = by_tenant.setdefault(rec.get("tenant"), ([], []))
            if rec["type"] == "entry":
                t[0].append(rec)
            elif rec["type"] == "checkpoint":
                t[1].append(rec)
    total = 0
    for tenant, (entries, checkpoints) in sorted(by_tenant.items(), key=lambda kv: str(kv[0])):
        if tenant is None:
            continue
        broken = verify(entries, checkpoints, key, first.get(tenant, 1))
        if broken:
            print("BROKEN tenant %s seq %d: %s" % (tenant, broken[0], broken[1]))
            sys.exit(1)
        total += len(entries)
        print("OK tenant %s: %d entries, %d checkpoints" % (tenant, len(entries), len(checkpoints)))
    print("OK %d entries" % total)


if __name__ == "__main__":
    main()
