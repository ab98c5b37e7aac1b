#!/usr/bin/env python3
"""Independent verifier of accessgrant audit chains, written only from docs/audit-log.md.

Reads a SQLite database directly (standard library only) and checks every account's chain:
sequence 1, 2, 3 ... without gaps, prev_hash links, SHA-256 over the canonical encoding v1,
and the chain head. Prints one line per account; exits 0 when all are intact, 1 otherwise.

Usage: python3 tools/verify_audit_chain.py PATH/TO/accessgrant.db
"""
import hashlib
import sqlite3
import struct
import sys
from datetime import datetime, timezone

VERSION_TAG = "accessgrant.audit.v1"
GENESIS = bytes(32)


def field(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def rfc3339_micros(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    t = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def canonical(row) -> bytes:
    (event_id, account_id, sequence, occur_us, kind, actor_type, actor_value, detail, request_id) = row
    parts = [VERSION_TAG, event_id, account_id, str(sequence), rfc3339_micros(occur_us), kind,
             actor_type, actor_value, detail, request_id]
    return b"".join(field(p) for p in parts)


def verify(db, account):
    head = db.execute("SELECT last_sequence, last_hash FROM audit_chain_heads WHERE account_id = ?",
                      (account,)).fetchone()
    head_seq, head_hash = (head[0], bytes(head[1])) if head else (0, GENESIS)
    rows = db.execute(
        "SELECT event_id, account_id, sequence, occur_time_us, kind, actor_type, actor_value,"
        " detail_json, request_id, prev_hash, hash FROM audit_events"
        " WHERE account_id = ? ORDER BY global_position", (account,)).fetchall()
    expected_prev, expected_seq, checked, last_id = GENESIS, 1, 0, None
    for row in rows:
        checked += 1
        prev, stored = bytes(row[9]), bytes(row[10])
        computed = hashlib.sha256(prev + canonical(row[:9])).digest()
        # An event beyond the head was not appended by the service: it was inserted.
        if row[2] != expected_seq or row[2] > head_seq or prev != expected_prev or stored != computed:
            return checked, row[0]
        expected_prev, expected_seq, last_id = stored, expected_seq + 1, row[0]
    last = expected_seq - 1
    # Creating an account is an event: an account with none lost its whole log.
    if checked == 0:
        return checked, "no-events"
    if last < head_seq:
        return checked, f"missing-after-sequence-{last}"
    if last > 0 and head_hash != expected_prev:
        return checked, last_id
    return checked, None


def main():
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    accounts = [r[0] for r in db.execute(
        "SELECT account_id FROM audit_chain_heads UNION SELECT account_id FROM audit_events"
        " UNION SELECT account_id FROM accounts ORDER BY 1")]
    broken = False
    for account in accounts:
        checked, first_broken = verify(db, account)
        if first_broken is None:
            print(f"{account}: intact ({checked} events)")
        else:
            broken = True
            print(f"{account}: BROKEN at event {first_broken} (after checking {checked} events)")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
