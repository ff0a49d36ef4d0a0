"""A direct producer in Python (docs/DIRECT-PRODUCERS.md): confluent-kafka (librdkafka inside) with
its AvroSerializer against the registry's Confluent-compatible API.

    bash scripts/python-env.sh                     # makes .venv with the pinned packages
    .venv/bin/python examples/python/produce.py --count 10

It sends COUNT loyalty_points_earned facts, then (to show what the consumer does with it) one
conflicting payload under the first fact's tuple: the consumer keeps the first fact and
dead-letters the conflict as tuple_conflict. The last line of output is a JSON summary.
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from cdp_wire import canonical_key, new_event_id, partition_for

here = os.path.dirname(os.path.abspath(__file__))
args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
args.add_argument("--brokers", default="127.0.0.1:19092")
args.add_argument("--topic", default="cdp.events.v1")
args.add_argument("--registry", default="http://127.0.0.1:18081/apis/ccompat/v7")
args.add_argument("--tenant", default="acme")
args.add_argument("--source", default="svc.loyalty.py", help="a source of your own: the API's idempotency claims do not see direct writes")
args.add_argument("--run", default=str(int(time.time())), help="part of every externalEventId, so runs do not collide")
args.add_argument("--count", type=int, default=5)
args.add_argument("--partitioner", default="murmur2_random",
                  help="keep murmur2_random; another one (e.g. librdkafka's default consistent_random) only shows the consumer dead-lettering misplaced records as wrong_partition")
opts = args.parse_args()

registry = SchemaRegistryClient({"url": opts.registry})
# Never register or evolve the schema: the service registered it under <topic>-value at start.
# use.latest.version writes with the latest registered version of that subject (an unregistered
# subject fails here, before anything is sent).
with open(os.path.join(here, "..", "..", "avro", "cdp-event.avsc"), encoding="utf-8") as f:
    schema_text = f.read()
serializer = AvroSerializer(registry, schema_text, conf={"auto.register.schemas": False, "use.latest.version": True})

producer = Producer({
    "bootstrap.servers": opts.brokers,
    # librdkafka's default (consistent_random) hashes keys with CRC32: another partition than Java
    # and kafkajs pick for most keys. murmur2_random is Kafka's default partitioner for keyed records.
    "partitioner": opts.partitioner,
    "enable.idempotence": True,
    "acks": "all",
})
partitions = len(producer.list_topics(opts.topic, timeout=10).topics[opts.topic].partitions)
if partitions == 0:
    sys.exit("topic %s does not exist: start the service once (it creates the topic and registers the schema)" % opts.topic)


def fact(external_event_id, points, occurred_at_ms):
    now = int(time.time() * 1000)
    return {
        "eventId": new_event_id(now),          # new per record; reuse it when re-sending after an unknown outcome
        "tenant": opts.tenant,
        "source": opts.source,
        "externalEventId": external_event_id,
        "eventType": "loyalty_points_earned",
        "occurredAt": occurred_at_ms,
        "occurredAtDefaulted": False,
        "receivedAt": now,
        "identity": {"externalUserId": "L-py-%s" % external_event_id, "email": "py.customer@example.com", "phone": None, "deviceKey": None},
        # compact JSON text; the fingerprint does not depend on key order or spacing
        "properties": json.dumps({"points": points, "balance": 100 + points, "reason": "purchase"}, separators=(",", ":"), ensure_ascii=False),
        "contractVersion": 1,                  # "version" of config/contracts/loyalty_points_earned.json
    }


delivered = {}  # eventId -> what Kafka acknowledged; reports arrive per partition, not in send order


def send(value):
    key = canonical_key(value["tenant"], value["source"], value["externalEventId"])
    expected = partition_for(key, partitions)

    def report(err, msg):
        if err is not None:
            raise KafkaException(err)
        if msg.partition() != expected and opts.partitioner == "murmur2_random":
            raise SystemExit("librdkafka chose partition %d, murmur2 names %d: check the partitioner setting" % (msg.partition(), expected))
        delivered[value["eventId"]] = {"externalEventId": value["externalEventId"], "eventId": value["eventId"],
                                       "key": key.decode("utf-8"), "partition": msg.partition(), "offset": msg.offset(), "murmur2": expected}

    payload = serializer(value, SerializationContext(opts.topic, MessageField.VALUE))
    producer.produce(opts.topic, key=key, value=payload, on_delivery=report)
    producer.poll(0)


occurred = int(time.time() * 1000) - 60_000
facts = [fact("py-%s-%d" % (opts.run, i), 10 * (i + 1), occurred) for i in range(opts.count)]
for v in facts:
    send(v)
if producer.flush(30) != 0:
    sys.exit("not every fact was acknowledged")

# the same tuple with another payload: a conflict (a correction must be a new fact with its own id)
conflict = dict(facts[0], eventId=new_event_id(), properties=json.dumps({"points": 999, "reason": "adjustment"}, separators=(",", ":")))
send(conflict)
if producer.flush(30) != 0:
    sys.exit("the conflicting record was not acknowledged")

sent = [delivered[v["eventId"]] for v in facts]
for d in sent + [delivered[conflict["eventId"]]]:
    print("sent %s to partition %d (offset %d) as %s" % (d["key"], d["partition"], d["offset"], d["eventId"]))
print(json.dumps({"topic": opts.topic, "partitions": partitions, "facts": sent, "conflict": delivered[conflict["eventId"]]}))
