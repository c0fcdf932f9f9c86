#!/usr/bin/python3
"""The one item definition of the benchmark, and everything made from it.

    /usr/bin/python3 bench/gen.py OUTDIR

writes, all as DynamoDB wire JSON:
  OUTDIR/item.json            the item (sk = 1); every runner turns it into its native values
  OUTDIR/page.json            the 1,000 items of a page (sk = 1..1000), to fill DynamoDB Local
  OUTDIR/canned/<Op>.json     what the canned server answers to each X-Amz-Target
  OUTDIR/requests/<w>.json    the floor's request bodies, built once before any timing
  OUTDIR/meta.json            table name, keys, sizes, per-call item counts

Items of a page differ only by sk. The request bodies are what the clients send (lunamodb's
update included, see UPDATE_*), so the floor does the same work against DynamoDB Local.
"""
import json
import os
import sys

TABLE = "bench_items"
PSCAN_TABLE = "bench_pscan"
PK = "tenant#0042"
PAGE = 1000          # items a Query/Scan page answers
BATCH_WRITE = 25     # items per BatchWriteItem
BATCH_GET = 100      # keys per BatchGetItem
GET_SK = 1           # put and get use this item...
UPDATE_SK = 2        # ...update another one, so a get never sees an updated item
NEW_NAME = "Charles Babbage Jr 2"    # update: SET score = score + 1, name = NEW_NAME

# Which X-Amz-Target each workload sends.
TARGETS = {
    "put": "PutItem", "get": "GetItem", "update": "UpdateItem", "query": "Query",
    "scan": "Scan", "batch_write": "BatchWriteItem", "batch_get": "BatchGetItem",
}


def item(sk, score=31337, name="Ada Lovelace Byron I"):
    """The benchmark item (about 450 bytes of wire JSON)."""
    assert len(name) == 20
    return {
        "pk": {"S": PK},
        "sk": {"N": str(sk)},
        "name": {"S": name},
        "email": {"S": "ada@analytical-engine.example"},
        "score": {"N": str(score)},
        "ratio": {"N": "0.7315"},
        "active": {"BOOL": True},
        "tags": {"SS": ["admin", "beta", "engines"]},
        "created": {"S": "2024-05-17T09:26:53.123456+0000"},
        "profile": {"M": {"city": {"S": "London"}, "zip": {"N": "10115"},
                          "verified": {"BOOL": True}, "level": {"N": "7"}}},
        "history": {"L": [{"N": "12"}, {"N": "15"}, {"N": "9"}, {"N": "21"}, {"N": "30"}]},
    }


def key(sk):
    return {"pk": {"S": PK}, "sk": {"N": str(sk)}}


def dumps(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def main(out):
    one = dumps(item(GET_SK))
    assert 440 <= len(one) <= 460, len(one)
    page = [item(i) for i in range(1, PAGE + 1)]
    updated = item(UPDATE_SK, score=31338, name=NEW_NAME)

    canned = {
        "PutItem": {},
        "GetItem": {"Item": item(GET_SK)},
        # lunamodb's item:update asks for ReturnValues ALL_NEW, so DynamoDB answers the whole item
        "UpdateItem": {"Attributes": updated},
        "Query": {"Items": page, "Count": PAGE, "ScannedCount": PAGE},
        "Scan": {"Items": page, "Count": PAGE, "ScannedCount": PAGE},
        "BatchWriteItem": {"UnprocessedItems": {}},
        "BatchGetItem": {"Responses": {TABLE: page[:BATCH_GET]}, "UnprocessedKeys": {}},
    }
    requests = {
        "put": {"TableName": TABLE, "Item": item(GET_SK)},
        "get": {"TableName": TABLE, "Key": key(GET_SK), "ConsistentRead": False},
        "update": {
            "TableName": TABLE, "Key": key(UPDATE_SK),
            "UpdateExpression": "SET #0 = #0 + :0, #1 = :1",
            "ExpressionAttributeNames": {"#0": "score", "#1": "name"},
            "ExpressionAttributeValues": {":0": {"N": "1"}, ":1": {"S": NEW_NAME}},
            "ReturnValues": "ALL_NEW",
        },
        "query": {
            "TableName": TABLE, "KeyConditionExpression": "#0 = :0",
            "ExpressionAttributeNames": {"#0": "pk"},
            "ExpressionAttributeValues": {":0": {"S": PK}},
        },
        "scan": {"TableName": TABLE},
        "batch_write": {"RequestItems": {TABLE: [{"PutRequest": {"Item": item(i)}}
                                                 for i in range(1, BATCH_WRITE + 1)]}},
        "batch_get": {"RequestItems": {TABLE: {"Keys": [key(i) for i in range(1, BATCH_GET + 1)]}}},
    }
    meta = {
        "table": TABLE, "pscan_table": PSCAN_TABLE, "pk": PK, "get_sk": GET_SK,
        "update_sk": UPDATE_SK, "new_name": NEW_NAME, "item_bytes": len(one),
        "targets": TARGETS,
        "per_call": {"put": 1, "get": 1, "update": 1, "query": PAGE, "scan": PAGE,
                     "batch_write": BATCH_WRITE, "batch_get": BATCH_GET},
    }

    for d in ("canned", "requests"):
        os.makedirs(os.path.join(out, d), exist_ok=True)

    def write(rel, text):
        with open(os.path.join(out, rel), "w", encoding="utf-8") as f:
            f.write(text)

    write("item.json", one)
    write("page.json", dumps(page))
    for op, body in canned.items():
        write(f"canned/{op}.json", dumps(body))
    for w, body in requests.items():
        write(f"requests/{w}.json", dumps(body))
    write("meta.json", json.dumps(meta, indent=1))
    return meta


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen.py OUTDIR")
    main(sys.argv[1])
