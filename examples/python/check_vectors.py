"""Checks cdp_wire.py (the canonical key and the murmur2 partition) against the project's test
vectors, as any producer should in its own language:

    python3 examples/python/check_vectors.py [path/to/test-vectors.json]

Exit status 0 when every vector matches."""
import json
import os
import sys

from cdp_wire import canonical_key, partition_for

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "docs", "wire", "test-vectors.json")
with open(path, encoding="utf-8") as f:
    vectors = json.load(f)

failures = []
checked = 0
failed = set()
for v in vectors["keys"]:
    t = v["tuple"]
    parts = (t["tenant"], t["source"], t["externalEventId"])
    if v.get("sendable", True) is False:
        # the contract says: refuse it (it cannot be written as Avro); make sure we do
        try:
            canonical_key(*parts)
            failures.append("%s: accepted a tuple the contract says to refuse" % v["name"])
            failed.add(v["name"])
        except ValueError:
            pass
        checked += 1
        continue
    key = canonical_key(*parts)
    if key.hex() != v["keyHex"]:
        failures.append("%s: key %s, expected %s" % (v["name"], key.hex(), v["keyHex"]))
        failed.add(v["name"])
        checked += 1
        continue
    for n in vectors["partitionCounts"]:
        got = partition_for(key, n)
        if got != v["partitions"][str(n)]:
            failures.append("%s: %d partitions -> %d, expected %d" % (v["name"], n, got, v["partitions"][str(n)]))
            failed.add(v["name"])
    checked += 1

for line in failures:
    print("FAIL " + line)
print("%d of %d key vectors match" % (checked - len(failed), len(vectors["keys"])))
sys.exit(1 if failures else 0)
