#!/usr/bin/python3
"""boto3's runner (Debian's python3-boto3, run with /usr/bin/python3).

    /usr/bin/python3 bench/boto3_runner.py WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]

The resource API (Table), which turns native values into DynamoDB JSON and back with
TypeSerializer / TypeDeserializer: numbers come back as Decimal, sets as set. Prints the
RESULT line every runner prints.
"""
import gc
import json
import sys
import time

import boto3
from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer

workload, calls, endpoint, datadir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
warmup = int(sys.argv[5]) if len(sys.argv) > 5 else max(3, calls // 10)


def load(name):
    with open(f"{datadir}/{name}", encoding="utf-8") as f:
        return json.load(f)


meta = load("meta.json")
T, PK = meta["table"], meta["pk"]
des = TypeDeserializer()


def native(wire):
    return {k: des.deserialize(v) for k, v in wire.items()}


proto = native(load("item.json"))
page = [native(w) for w in load("page.json")]

session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                region_name="us-east-1")
ddb = session.resource("dynamodb", endpoint_url=endpoint)
table = ddb.Table(T)
checked = False


def check(got, sk):
    want = dict(proto, sk=sk)
    if got != want:
        sys.exit(f"boto3_runner: decoded item differs:\n{got}\n{want}")


def put():
    table.put_item(Item=proto)
    return 1


def get():
    global checked
    it = table.get_item(Key={"pk": PK, "sk": meta["get_sk"]})["Item"]
    if not checked:
        check(it, meta["get_sk"])
        checked = True
    return 1


def update():
    global checked
    out = table.update_item(
        Key={"pk": PK, "sk": meta["update_sk"]},
        UpdateExpression="SET #s = #s + :one, #n = :name",
        ExpressionAttributeNames={"#s": "score", "#n": "name"},
        ExpressionAttributeValues={":one": 1, ":name": meta["new_name"]},
        ReturnValues="ALL_NEW")["Attributes"]
    if not checked:
        assert out["name"] == meta["new_name"] and out["score"] > 31337, out
        checked = True
    return 1


def items_of(items, n):
    global checked
    if not checked:                # the update target holds updated values on DynamoDB Local
        for it in items:
            if it["sk"] != meta["update_sk"]:
                check(it, it["sk"])
        checked = True
    assert len(items) == n, len(items)
    return n


def query():
    return items_of(table.query(KeyConditionExpression=Key("pk").eq(PK))["Items"], 1000)


def scan():
    return items_of(table.scan()["Items"], 1000)


def batch_write():
    with table.batch_writer() as b:        # flushes 25 at a time: one request per call
        for it in page[:25]:
            b.put_item(Item=it)
    return 25


keys = [{"pk": PK, "sk": i} for i in range(1, 101)]


def batch_get():
    out = ddb.batch_get_item(RequestItems={T: {"Keys": keys}})
    assert not out["UnprocessedKeys"]
    return items_of(out["Responses"][T], 100)


fn = {"put": put, "get": get, "update": update, "query": query, "scan": scan,
      "batch_write": batch_write, "batch_get": batch_get}[workload]
for _ in range(warmup):
    fn()
gc.collect()            # the set-up's garbage is not the timed section's (as the Lua runner)
items = 0
c0, w0 = time.process_time(), time.perf_counter()
for _ in range(calls):
    items += fn()
cpu, wall = (time.process_time() - c0) * 1e6, (time.perf_counter() - w0) * 1e6
print("RESULT " + json.dumps({"workload": workload, "items": items, "requests": warmup + calls,
                              "cpu_us_per_item": cpu / items, "wall_us_per_item": wall / items}))
