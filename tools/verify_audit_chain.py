#!/usr/bin/env python3
"""Independent verifier of the accessgrant audit log, written from docs/audit-log.md only.

Nothing here was taken from the service's source code: every rule below is the page's, so
the test suite (tests/independent_verifier.rs), which runs this script against intact and
tampered databases, fails whenever the page and the service disagree.

What it checks
  * Every account's hash chain ("Verifying a chain"): sequence 1, 2, 3 ... without gaps and
    not beyond the chain head, prev_hash links (32 zero bytes first), SHA-256 over the
    canonical encoding v1, and the chain head's sequence and hash. An account known only
    from the accounts table or a head, with no events, lost its whole log.
  * With --verifier-key ("The Merkle tree and signed checkpoints"): rebuilds the RFC 9162
    Merkle tree from the event rows in leaf_index order (leaf data = the event's chain
    hash; leaf_index must be 0 .. n-1), then checks every stored checkpoint of the key's
    origin and every --checkpoint file: its C2SP signed-note Ed25519 signature, that a
    stored row's columns match its signed text, and that its root equals the rebuilt root
    at its size (a size above the number of leaves means events were deleted).

Usage
  python3 tools/verify_audit_chain.py DATABASE [--verifier-key VKEY [--checkpoint FILE]...]
  python3 tools/verify_audit_chain.py --self-test

  DATABASE        a SQLite file (opened read-only), or a postgres:// or postgresql:// URL,
                  read with the psql client (from PATH, else the newest
                  /usr/lib/postgresql/*/bin/psql). Everything is read in one snapshot.
  --verifier-key  <name>+<key id, 8 hex digits>+<base64(0x01 || Ed25519 public key)>, as
                  Go's sumdb/note prints it; obtain it out of band, not from the server.
  --checkpoint    a file holding a checkpoint's text exactly as GetAuditCheckpoint returned
                  it; repeatable; needs --verifier-key.
  --self-test     reproduces the page's worked examples (canonical encoding, tree,
                  checkpoint and verifier key) and exits.

Output: one line per account, "<account>: intact (N events)" or
"<account>: BROKEN at event <id> (after checking N events)"; with a verifier key then
"tree: intact (N leaves, M checkpoints)" or one "tree: BROKEN: <checkpoint>: <why>" line per
failing checkpoint. Exit status: 0 when everything is intact, 1 when anything is broken, 2
when it could not check (bad arguments, unreadable database).

Requires Python 3.8+ and its standard library; --verifier-key and --self-test also need the
`cryptography` package (for Ed25519 only).
"""
import argparse
import base64
import glob
import hashlib
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path


class CannotCheck(Exception):
    """The database could not be read: neither intact nor broken (exit 2)."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- Canonical encoding, version 1, and the chain ("Verifying a chain") -------------------

VERSION_TAG = "accessgrant.audit.v1"
GENESIS = bytes(32)

Event = namedtuple(
    "Event",
    "event_id account_id sequence occur_time_us kind actor_type actor_value detail_json"
    " request_id prev_hash hash leaf_index",
)
Head = namedtuple("Head", "account_id last_sequence last_hash")


def field(value: str) -> bytes:
    """A field: its UTF-8 length as a 4-byte big-endian unsigned integer, then its bytes."""
    data = value.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def rfc3339_micros(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC with exactly six fractional digits."""
    seconds, micros = divmod(us, 1_000_000)
    t = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def canonical(e: Event) -> bytes:
    parts = [VERSION_TAG, e.event_id, e.account_id, str(e.sequence),
             rfc3339_micros(e.occur_time_us), e.kind, e.actor_type, e.actor_value,
             e.detail_json, e.request_id]
    return b"".join(field(p) for p in parts)


def link_hash(e: Event) -> bytes:
    """hash = SHA-256(prev_hash || canonical_bytes(event))."""
    return sha256(e.prev_hash + canonical(e))


def verify_chain(events, head):
    """Checks one account's events (in commit order) against its head (None when missing).

    Returns (events checked, None) when intact, else (events checked, what broke first):
    an event id, `missing-after-sequence-N` or `no-events`."""
    head_seq, head_hash = (head.last_sequence, head.last_hash) if head else (0, GENESIS)
    expected_prev, expected_seq, checked, last_id = GENESIS, 1, 0, None
    for e in events:
        checked += 1
        # An event beyond the head was not appended by the service: it was inserted.
        if (e.sequence != expected_seq or e.sequence > head_seq
                or e.prev_hash != expected_prev or e.hash != link_hash(e)):
            return checked, e.event_id
        expected_prev, expected_seq, last_id = e.hash, expected_seq + 1, e.event_id
    last = expected_seq - 1
    # Creating an account is an event: an account with none lost its whole log.
    if checked == 0:
        return checked, "no-events"
    if last < head_seq:
        return checked, f"missing-after-sequence-{last}"
    if head_hash != expected_prev:
        return checked, last_id
    return checked, None


def report_chains(snapshot) -> bool:
    """Prints one line per account; returns whether every chain is intact."""
    by_account = {}
    for e in snapshot.events:  # already in commit (global_position) order
        by_account.setdefault(e.account_id, []).append(e)
    heads = {h.account_id: h for h in snapshot.heads}
    accounts = sorted(set(snapshot.accounts) | set(heads) | set(by_account))
    intact = True
    for account in accounts:
        checked, first_broken = verify_chain(by_account.get(account, []), heads.get(account))
        if first_broken is None:
            print(f"{account}: intact ({checked} events)")
        else:
            intact = False
            print(f"{account}: BROKEN at event {first_broken} (after checking {checked} events)")
    return intact


# --- The Merkle tree (RFC 9162 section 2.1) -----------------------------------------------

EMPTY_ROOT = sha256(b"")


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def mth(data) -> bytes:
    """MTH(D[n]), the page's recursive definition (the self-test's reference)."""
    n = len(data)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(data[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(data[:k]), mth(data[k:]))


def roots_at_sizes(data, sizes) -> dict:
    """MTH(D[0:n]) for every n in `sizes` (each at most len(data)), in one pass.

    After i leaves, `stack` holds (height, hash) of the complete subtrees D[0:i] splits
    into, largest first. Folding them from the right is the recursion of `mth`: split off
    the largest power of two smaller than n, then the rest."""
    wanted = set(sizes)
    roots = {0: EMPTY_ROOT} if 0 in wanted else {}
    stack = []
    for i, d in enumerate(data, start=1):
        height, h = 0, leaf_hash(d)
        while stack and stack[-1][0] == height:
            h = node_hash(stack.pop()[1], h)
            height += 1
        stack.append((height, h))
        if i in wanted:
            roots[i] = fold(stack)
    return roots


def fold(stack) -> bytes:
    root = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return root


def leaf_data(events):
    """The leaves' data in leaf_index order; raises ValueError unless indexes are 0..n-1."""
    ordered = sorted(events, key=lambda e: e.leaf_index)
    for i, e in enumerate(ordered):
        if e.leaf_index != i:
            raise ValueError(f"leaf_index is not dense: event {e.event_id} has leaf_index "
                             f"{e.leaf_index} where {i} was expected")
    return [e.hash for e in ordered]


# --- Checkpoints: C2SP tlog-checkpoint in a C2SP signed-note, Ed25519 ---------------------

ED25519 = b"\x01"  # the signature type byte
VerifierKey = namedtuple("VerifierKey", "name key_id public_key")
Checkpoint = namedtuple("Checkpoint", "origin size root")
StoredCheckpoint = namedtuple("StoredCheckpoint", "origin tree_size root_hash note")


class CheckpointError(Exception):
    """Why a checkpoint does not verify."""


def b64decode_strict(text: str) -> bytes:
    """Standard, padded base64, and nothing else."""
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError(f"not canonical base64: {text!r}")
    return data


def key_id(name: str, public_key: bytes) -> bytes:
    """The first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key)."""
    return sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key)[:4]


def parse_verifier_key(text: str) -> VerifierKey:
    """`<name>+<key id as 8 hex digits>+<base64(0x01 || public key)>`. Base64 uses `+`
    too, so this splits at the first two: a key name cannot hold a `+`."""
    parts = text.split("+", 2)
    if len(parts) != 3 or not parts[0] or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise ValueError("expected <name>+<8 hex digits>+<base64 key>")
    name, id_hex, key_b64 = parts
    key = b64decode_strict(key_b64)
    if len(key) != 33 or key[:1] != ED25519:
        raise ValueError("the key is not 0x01 followed by a 32-byte Ed25519 public key")
    if key_id(name, key[1:]).hex() != id_hex:
        raise ValueError(f"key id {id_hex} does not match the name and key")
    return VerifierKey(name, bytes.fromhex(id_hex), key[1:])


def ed25519_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def split_note(note: str):
    """(signed body with its final newline, signature lines) of a signed note."""
    body, blank, signatures = note.partition("\n\n")
    if not blank or not signatures.endswith("\n"):
        raise CheckpointError("not a signed note (body, blank line, signature lines, each "
                              "ending in a newline)")
    return body + "\n", signatures[:-1].split("\n")


def signature_by(vkey: VerifierKey, lines) -> bytes:
    """The 64-byte signature of the line `— <key name> <base64(key id || signature)>`
    whose name and key id are the verifier key's."""
    for line in lines:
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if not m:
            raise CheckpointError(f"malformed signature line {line!r}")
        if m.group(1) != vkey.name:
            continue
        try:
            blob = b64decode_strict(m.group(2))
        except ValueError as e:
            raise CheckpointError(f"signature line: {e}") from None
        if len(blob) == 4 + 64 and blob[:4] == vkey.key_id:
            return blob[4:]
    raise CheckpointError(f"no signature by key {vkey.name}+{vkey.key_id.hex()}")


def parse_body(body: str) -> Checkpoint:
    """`<origin>\\n<tree size, decimal>\\n<base64 root>\\n`, no extension lines."""
    lines = body[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointError(f"the body has {len(lines)} lines, not 3")
    origin, size, root_b64 = lines
    if not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise CheckpointError(f"tree size {size!r} is not a decimal number")
    try:
        root = b64decode_strict(root_b64)
    except ValueError as e:
        raise CheckpointError(f"root: {e}") from None
    if len(root) != 32:
        raise CheckpointError(f"the root has {len(root)} bytes, not 32")
    return Checkpoint(origin, int(size), root)


def open_checkpoint(note: str, vkey: VerifierKey) -> Checkpoint:
    """The checkpoint signed in `note`, once its signature verifies with `vkey`."""
    body, lines = split_note(note)
    signature = signature_by(vkey, lines)
    if not ed25519_ok(vkey.public_key, signature, body.encode("utf-8")):
        raise CheckpointError("the signature does not verify with the verifier key")
    checkpoint = parse_body(body)
    if checkpoint.origin != vkey.name:
        raise CheckpointError(f"origin {checkpoint.origin!r} is not the key name")
    return checkpoint


def check_columns(row: StoredCheckpoint, signed: Checkpoint):
    """A stored row's columns must say what its signed text says."""
    if (row.tree_size, row.root_hash) != (signed.size, signed.root):
        raise CheckpointError(
            f"its columns (size {row.tree_size}, root {row.root_hash.hex()}) differ from its "
            f"signed text (size {signed.size}, root {signed.root.hex()})")


def check_root(signed: Checkpoint, leaves: int, roots: dict):
    if signed.size > leaves:
        raise CheckpointError(f"it covers {signed.size} leaves but the database holds "
                              f"{leaves}: events were deleted")
    if roots[signed.size] != signed.root:
        raise CheckpointError(f"its root {signed.root.hex()} differs from the root rebuilt "
                              f"from the events at size {signed.size}, "
                              f"{roots[signed.size].hex()}")


def open_checkpoints(snapshot, vkey: VerifierKey, files):
    """Every stored checkpoint of the key's origin and every file's, opened with the key:
    ([(label, Checkpoint)], [failure])."""
    opened, failures = [], []
    for row in snapshot.checkpoints:
        if row.origin != vkey.name:
            continue
        label = f"stored checkpoint of size {row.tree_size}"
        try:
            signed = open_checkpoint(row.note, vkey)
            check_columns(row, signed)
            opened.append((label, signed))
        except CheckpointError as e:
            failures.append(f"{label}: {e}")
    for path, note in files:
        label = f"checkpoint file {path}"
        try:
            opened.append((label, open_checkpoint(note, vkey)))
        except CheckpointError as e:
            failures.append(f"{label}: {e}")
    return opened, failures


def report_tree(snapshot, vkey: VerifierKey, files) -> bool:
    """Prints `tree: intact ...` or one `tree: BROKEN ...` line per failure; returns
    whether the tree is intact."""
    try:
        data = leaf_data(snapshot.events)
    except ValueError as e:
        print(f"tree: BROKEN: leaves: {e}")
        return False
    opened, failures = open_checkpoints(snapshot, vkey, files)
    roots = roots_at_sizes(data, [c.size for _, c in opened if c.size <= len(data)])
    for label, signed in opened:
        try:
            check_root(signed, len(data), roots)
        except CheckpointError as e:
            failures.append(f"{label}: {e}")
    for failure in failures:
        print(f"tree: BROKEN: {failure}")
    if not failures:
        print(f"tree: intact ({len(data)} leaves, {len(opened)} checkpoints)")
    return not failures


# --- Reading the database: one snapshot, two small row readers ----------------------------

TEXT, INT, BYTES = str, int, bytes
Table = namedtuple("Table", "name columns order")
TABLES = [
    Table("accounts", [("account_id", TEXT)], "account_id"),
    Table("audit_chain_heads",
          [("account_id", TEXT), ("last_sequence", INT), ("last_hash", BYTES)], "account_id"),
    Table("audit_events",
          [("event_id", TEXT), ("account_id", TEXT), ("sequence", INT),
           ("occur_time_us", INT), ("kind", TEXT), ("actor_type", TEXT),
           ("actor_value", TEXT), ("detail_json", TEXT), ("request_id", TEXT),
           ("prev_hash", BYTES), ("hash", BYTES), ("leaf_index", INT)],
          "global_position"),
    Table("audit_checkpoints",
          [("origin", TEXT), ("tree_size", INT), ("root_hash", BYTES), ("note", TEXT)],
          "origin, tree_size"),
]
Snapshot = namedtuple("Snapshot", "accounts heads events checkpoints")


def select(table: Table, columns: str) -> str:
    return f"SELECT {columns} FROM {table.name} ORDER BY {table.order}"


def typed(table: Table, values, convert=lambda kind, value: kind(value)) -> tuple:
    return tuple(convert(kind, v) for (_, kind), v in zip(table.columns, values))


def read_sqlite(path: str) -> dict:
    """Every table's rows, from a SQLite file opened read-only, in one transaction."""
    if not Path(path).is_file():
        raise CannotCheck(f"{path}: no such file")
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            db.execute("BEGIN")
            rows = {}
            for t in TABLES:
                query = select(t, ", ".join(name for name, _ in t.columns))
                rows[t.name] = [typed(t, row) for row in db.execute(query)]
            return rows
        finally:
            db.close()
    except sqlite3.Error as e:
        raise CannotCheck(f"{path}: {e}") from None


def psql_version(path: str):
    """[15] for /usr/lib/postgresql/15/bin/psql."""
    return [int(x) for x in re.findall(r"\d+", Path(path).parent.parent.name)]


def find_psql() -> str:
    """psql on PATH, else the newest /usr/lib/postgresql/<version>/bin/psql."""
    found = shutil.which("psql")
    if found:
        return found
    installed = glob.glob("/usr/lib/postgresql/*/bin/psql")
    if not installed:
        raise CannotCheck("psql not found on PATH nor in /usr/lib/postgresql/*/bin")
    return max(installed, key=psql_version)


def copy_query(table: Table) -> str:
    """COPY of `table`'s rows, each starting with the table's name (so that every table's
    rows can share one output), bytea as hex."""
    columns = [f"encode({name}, 'hex')" if kind is BYTES else name
               for name, kind in table.columns]
    return f"COPY ({select(table, ', '.join([repr(table.name)] + columns))}) TO STDOUT;\n"


COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unescape_copy(value: str) -> str:
    """A COPY text-format value: backslash escapes control characters and itself."""
    return re.sub(r"\\(.)", lambda m: COPY_ESCAPES.get(m.group(1), m.group(1)), value)


def from_copy(kind, value: str):
    if kind is BYTES:
        return bytes.fromhex(value)  # selected with encode(column, 'hex')
    return kind(unescape_copy(value))


def read_postgres(url: str) -> dict:
    """Every table's rows through psql, in one REPEATABLE READ transaction."""
    copies = "".join(copy_query(t) for t in TABLES)
    script = f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n{copies}COMMIT;\n"
    done = subprocess.run(
        [find_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"],
        input=script.encode("utf-8"), capture_output=True,
        env={**os.environ, "PGCLIENTENCODING": "UTF8"})
    if done.returncode != 0:
        raise CannotCheck(f"psql: {done.stderr.decode('utf-8', 'replace').strip()}")
    tables = {t.name: t for t in TABLES}
    rows = {t.name: [] for t in TABLES}
    # Only "\n" ends a COPY row: str.splitlines() would also split at U+2028 and others.
    for line in done.stdout.decode("utf-8").split("\n")[:-1]:
        name, *values = line.split("\t")
        if name not in tables or len(values) != len(tables[name].columns):
            raise CannotCheck(f"psql printed an unexpected line: {line!r}")
        rows[name].append(typed(tables[name], values, from_copy))
    return rows


def read_snapshot(database: str) -> Snapshot:
    if re.match(r"postgres(ql)?://", database):
        rows = read_postgres(database)
    else:
        rows = read_sqlite(database)
    return Snapshot(
        accounts=[account for (account,) in rows["accounts"]],
        heads=[Head(*r) for r in rows["audit_chain_heads"]],
        events=[Event(*r) for r in rows["audit_events"]],
        checkpoints=[StoredCheckpoint(*r) for r in rows["audit_checkpoints"]],
    )


# --- The page's worked examples ------------------------------------------------------------

def self_test():
    """Reproduces the worked examples of docs/audit-log.md, byte for byte."""
    # "Canonical encoding, version 1": the first event of account acme.
    occur = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)
    example = Event("e1", "acme", 1, int(occur.timestamp()) * 1_000_000, "GRANT_ENABLED",
                    "customer_user_id", "alice", "{}", "", GENESIS, b"", 0)
    expected = b"".join([
        bytes.fromhex("00000014"), b"accessgrant.audit.v1", bytes.fromhex("00000002"), b"e1",
        bytes.fromhex("00000004"), b"acme", bytes.fromhex("00000001"), b"1",
        bytes.fromhex("0000001b"), b"2026-11-25T09:30:00.000000Z",
        bytes.fromhex("0000000d"), b"GRANT_ENABLED",
        bytes.fromhex("00000010"), b"customer_user_id", bytes.fromhex("00000005"), b"alice",
        bytes.fromhex("00000002"), b"{}", bytes.fromhex("00000000"),
    ])
    assert canonical(example) == expected, "canonical encoding example"

    # "The Merkle tree and signed checkpoints": three leaves.
    data = [sha256(f"event-{i}".encode()) for i in range(3)]
    table = {
        "data 0": (data[0], "23352a67ac7ffc4b5d98023dc1a54ee507d4bf95dc1c4154045c5e2bbde73317"),
        "data 1": (data[1], "ce36863f51b6baf9d16397ffb3e9af506b284a816f72d487e55943c1fd974d6d"),
        "data 2": (data[2], "b4e3d14e7519279e6a352f776d75a905a9de9a27efdb6d802fe4e700224ade2e"),
        "leaf 0": (leaf_hash(data[0]),
                   "e92348a95c75e943f06588e8f4e6c73d17fbe56595c75169aafbb8086ad75adf"),
        "leaf 1": (leaf_hash(data[1]),
                   "bedfee2326ebe91108b504355a3726bfd498ad8ec1925b4a4800463ee709557b"),
        "leaf 2": (leaf_hash(data[2]),
                   "d1c02dd09e1affe3ded8d8e59e915fbf19c7cac0156aa56ae7ddd646884144b5"),
        "node [0,2)": (mth(data[:2]),
                       "6de3c59a3e329a98770e8c038c0ddc766ec1043d9f69b53330a6e20da76fe934"),
        "root": (mth(data),
                 "889c7b0b601b40a117fd856be1a22a045b6e521b8f1e08c8e7bd8f0646fbed72"),
        "empty root": (mth([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    }
    for what, (got, want) in table.items():
        assert got.hex() == want, f"tree example: {what}"
    # The one-pass rebuild agrees with the recursive definition at every size.
    many = [sha256(str(i).encode()) for i in range(70)]
    assert roots_at_sizes(many, range(71)) == {n: mth(many[:n]) for n in range(71)}, "rebuild"

    public_key = bytes.fromhex("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
    assert key_id("accessgrant/audit", public_key).hex() == "4dca146b", "key id"
    vkey = parse_verifier_key(
        "accessgrant/audit+4dca146b+ARm/RAlphM3+hUG6wWfcO5bIUIaqMLa2ywxcOK1wMWbh")
    assert vkey.public_key == public_key, "verifier key"
    note = ("accessgrant/audit\n3\niJx7C2AbQKEX/YVr4aIqBFtuUhuPHgjI572PBkb77XI=\n\n"
            "\u2014 accessgrant/audit TcoUa/VpVZ9LpVx/UCjqOZwbB5DBy0bDUhrpsuOMBK0tNKGwRy+ccpE"
            "MChPTmfshG99AfVB7l6dcqtzs5LLni1uzVAE=\n")
    assert open_checkpoint(note, vkey) == Checkpoint("accessgrant/audit", 3, mth(data)), \
        "checkpoint example"
    forged = note.replace("\n3\n", "\n2\n")
    try:
        open_checkpoint(forged, vkey)
        raise AssertionError("a checkpoint with another size verified")
    except CheckpointError:
        pass
    print("self-test: the worked examples of docs/audit-log.md reproduce")


# --- Command line --------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Independent verifier of accessgrant audit chains, the Merkle tree and "
                    "signed checkpoints, written from docs/audit-log.md alone.")
    parser.add_argument("database", nargs="?", metavar="DATABASE",
                        help="a SQLite file, or a postgres:// or postgresql:// URL")
    parser.add_argument("--verifier-key", metavar="VKEY",
                        help="rebuild the tree and check checkpoints signed with this key")
    parser.add_argument("--checkpoint", metavar="FILE", action="append", default=[],
                        help="a kept checkpoint to check (repeatable; needs --verifier-key)")
    parser.add_argument("--self-test", action="store_true",
                        help="reproduce the documented worked examples and exit")
    args = parser.parse_args(argv)
    if not args.self_test and not args.database:
        parser.error("DATABASE is required")
    if args.checkpoint and not args.verifier_key:
        parser.error("--checkpoint needs --verifier-key")
    if args.verifier_key:
        try:
            args.verifier_key = parse_verifier_key(args.verifier_key)
        except ValueError as e:
            parser.error(f"--verifier-key: {e}")
    return args


def read_checkpoint_files(paths):
    files = []
    for path in paths:
        try:
            files.append((path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise CannotCheck(f"{path}: {e}") from None
    return files


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        self_test()
        return 0
    try:
        files = read_checkpoint_files(args.checkpoint)
        snapshot = read_snapshot(args.database)
    except CannotCheck as e:
        print(f"cannot check: {e}", file=sys.stderr)
        return 2
    intact = report_chains(snapshot)
    if args.verifier_key:
        intact = report_tree(snapshot, args.verifier_key, files) and intact
    return 0 if intact else 1


if __name__ == "__main__":
    sys.exit(main())
