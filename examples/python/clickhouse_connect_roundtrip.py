"""An analyst's Python client against the development ClickHouse gateway (docs/CLICKHOUSE-GATEWAY.md):
clickhouse-connect with its default settings, which insert in Native format with an lz4-compressed
body and read query results in Native format.

    bash scripts/python-env.sh                     # makes .venv with the pinned packages
    .venv/bin/python examples/python/clickhouse_connect_roundtrip.py --port 8123 \\
        --password "$(cat .data/chdb.gateway-token)" --database scratch

It creates TABLE (in DATABASE) with columns of several types, inserts rows through a client with
default settings and through one without compression (the statement and its Native data in one
body), reads them back with query() and checks they are what was inserted. Exit status 1 if not.
The last line of output is a JSON summary: how the client compressed, and the rows as inserted
(strings as hex of their UTF-8 bytes, bytes as hex, times as ISO text) for a caller to compare.
"""
import argparse
import datetime
import json
import os
import sys

import clickhouse_connect

args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
args.add_argument("--host", default="127.0.0.1")
args.add_argument("--port", type=int, default=8123)
args.add_argument("--password", default=os.environ.get("CLICKHOUSE_PASSWORD", ""), help="the gateway's token (default: $CLICKHOUSE_PASSWORD)")
args.add_argument("--database", default="scratch")
args.add_argument("--table", default="connect_roundtrip")
opts = args.parse_args()

UTC = datetime.timezone.utc
COLUMNS = ["id", "s", "n", "f", "ts", "note", "tags", "blob"]
# blob is a String column holding arbitrary bytes (NUL, 0xFF, an invalid UTF-8 sequence); it is
# read back as bytes (column_formats), since clickhouse-connect decodes String columns as UTF-8
ROWS = [
    [1, "Grüße aus Köln, 東京, 🚀", -(2 ** 63), 3.141592653589793,
     datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None, ["a", "", "ü"], b"\x00\x01\xff\xfe\xc3("],
    [2, "tab\there, quote ' and \\ backslash\nnewline", 2 ** 63 - 1, -1.0e-300,
     datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "noté", [], b""],
    [3, "", 0, 0.0, datetime.datetime(1970, 1, 1, 0, 0, 0, 0, tzinfo=UTC), "", ["long " * 60], bytes(range(256))],
]
# inserted through a client without compression: the INSERT statement and its Native data in one body
PLAIN_ROWS = [[4, "plain body ✓", 42, 2.5, datetime.datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=UTC), "x", ["y"], b"\x80"]]


def client(**kw):
    return clickhouse_connect.get_client(host=opts.host, port=opts.port, password=opts.password, **kw)


def same(a, b):
    """Equal, reading a naive datetime as UTC: clickhouse-connect returns naive datetimes for a UTC column"""
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        a, b = (x if x.tzinfo else x.replace(tzinfo=UTC) for x in (a, b))
    return a == b


def jsonable(row):
    """A row with exact, comparable text: strings as hex of their UTF-8 bytes."""
    rid, s, n, f, ts, note, tags, blob = row
    return {
        "id": rid, "s": s.encode("utf-8").hex(), "n": str(n), "f": repr(f),
        "ts": ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "note": None if note is None else note.encode("utf-8").hex(),
        "tags": [t.encode("utf-8").hex() for t in tags], "blob": blob.hex(),
    }


default = client()  # every setting at its default: compress=True, Native format, a session id
table = f"{opts.database}.{opts.table}"
default.command(f"CREATE DATABASE IF NOT EXISTS {opts.database}")
default.command(
    f"CREATE TABLE {table} (id UInt32, s String, n Int64, f Float64, ts DateTime64(6, 'UTC'), "
    "note Nullable(String), tags Array(String), blob String) ENGINE = MergeTree ORDER BY id")

written = default.insert(table, ROWS, column_names=COLUMNS)
plain = client(compress=False)
written_plain = plain.insert(table, PLAIN_ROWS, column_names=COLUMNS)

result = default.query(f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY id", column_formats={"blob": "bytes"})
read = [list(r) for r in result.result_rows]
expected = ROWS + PLAIN_ROWS
problems = []
if written.written_rows != len(ROWS):
    problems.append(f"insert reported written_rows={written.written_rows}, sent {len(ROWS)}")
if written_plain.written_rows != len(PLAIN_ROWS):
    problems.append(f"uncompressed insert reported written_rows={written_plain.written_rows}, sent {len(PLAIN_ROWS)}")
if len(read) != len(expected):
    problems.append(f"read {len(read)} rows, inserted {len(expected)}")
for want, got in zip(expected, read):
    for name, w, g in zip(COLUMNS, want, got):
        if not same(w, g):
            problems.append(f"row {want[0]} column {name}: inserted {w!r}, read {g!r}")
count = default.command(f"SELECT count() FROM {table}")

for p in problems:
    print("MISMATCH", p, file=sys.stderr)
print(json.dumps({
    "compression": default.compression, "write_compression": default.write_compression,
    "written_rows": written.written_rows + written_plain.written_rows, "count": count,
    "read_back_equal": not problems, "rows": [jsonable(r) for r in expected],
}))
sys.exit(1 if problems else 0)
