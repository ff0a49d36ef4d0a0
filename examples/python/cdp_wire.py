"""The wire contract of docs/DIRECT-PRODUCERS.md in Python: the canonical Kafka key, Kafka's
murmur2 partition for it, and event ids. check_vectors.py checks this module against
docs/wire/test-vectors.json; produce.py uses it."""
import json
import os
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def canonical_key(tenant: str, source: str, external_event_id: str) -> bytes:
    """The UTF-8 bytes of JSON.stringify([tenant, source, externalEventId]).

    json.dumps writes exactly JavaScript's escapes when told to: no spaces (separators) and
    non-ASCII as itself (ensure_ascii=False; the default would write U+007F and everything
    beyond ASCII as \\uXXXX). The one difference left: a lone surrogate, which JavaScript writes
    as \\udxxx and Python cannot encode as UTF-8. Such an id cannot travel in the Avro value
    either, so refuse it."""
    parts = [tenant, source, external_event_id]
    for p in parts:
        if not isinstance(p, str) or p == "":
            raise ValueError("tenant, source and externalEventId must be non-empty strings")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in p):
            raise ValueError("lone surrogate in %r: not representable in UTF-8 or Avro" % p)
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 (signed 32-bit result), emulating Java int overflow with masks."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length % 4
    if rest >= 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h = ((h ^ data[whole]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """What Java, kafkajs and librdkafka's murmur2_random pick: sign bit cleared, modulo."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def new_event_id(now_ms=None) -> str:
    """evt_ + 10 characters of time (sortable) + 16 random characters, lowercase Crockford base32."""
    t = int(time.time() * 1000) if now_ms is None else now_ms
    head = []
    for _ in range(10):
        head.append(ALPHABET[t % 32])
        t //= 32
    return "evt_" + "".join(reversed(head)) + "".join(ALPHABET[b % 32] for b in os.urandom(16))
