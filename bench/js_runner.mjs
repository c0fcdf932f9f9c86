// The AWS JS SDK v3 runner: DynamoDBDocumentClient (native values in and out), pinned at
// 3.1162.0 by bench/package.json + package-lock.json (installed into bench/node_modules).
//
//   node bench/js_runner.mjs WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]
//
// Prints the RESULT line every runner prints. CPU is process.cpuUsage(): the whole process,
// as the other runners count theirs.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DynamoDBDocumentClient, PutCommand, GetCommand, UpdateCommand, QueryCommand, ScanCommand,
  BatchWriteCommand, BatchGetCommand,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";

const [workload, callsText, endpoint, datadir, warmupText] = process.argv.slice(2);
const calls = Number(callsText);
const warmup = warmupText ? Number(warmupText) : Math.max(3, Math.floor(calls / 10));
const load = (name) => JSON.parse(readFileSync(`${datadir}/${name}`, "utf8"));

const meta = load("meta.json");
const T = meta.table, PK = meta.pk;
const proto = unmarshall(load("item.json"));
const page = load("page.json").map((w) => unmarshall(w));

const doc = DynamoDBDocumentClient.from(new DynamoDBClient({
  endpoint, region: "us-east-1",
  credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
}));
let checked = false;

function check(got, sk) {
  const want = { ...proto, sk };
  if (!isDeepStrictEqual(got, want)) {
    throw new Error(`decoded item differs:\n${JSON.stringify(got)}\n${JSON.stringify(want)}`);
  }
}

function itemsOf(items, n) {
  // the update target holds updated values on DynamoDB Local
  if (!checked) { for (const it of items) if (it.sk !== meta.update_sk) check(it, it.sk); checked = true; }
  if (items.length !== n) throw new Error(`expected ${n} items, got ${items.length}`);
  return n;
}

const keys = Array.from({ length: 100 }, (_, i) => ({ pk: PK, sk: i + 1 }));

const steps = {
  async put() {
    await doc.send(new PutCommand({ TableName: T, Item: proto }));
    return 1;
  },
  async get() {
    const out = await doc.send(new GetCommand({ TableName: T, Key: { pk: PK, sk: meta.get_sk } }));
    if (!checked) { check(out.Item, meta.get_sk); checked = true; }
    return 1;
  },
  async update() {
    const out = await doc.send(new UpdateCommand({
      TableName: T, Key: { pk: PK, sk: meta.update_sk },
      UpdateExpression: "SET #s = #s + :one, #n = :name",
      ExpressionAttributeNames: { "#s": "score", "#n": "name" },
      ExpressionAttributeValues: { ":one": 1, ":name": meta.new_name },
      ReturnValues: "ALL_NEW",
    }));
    if (!checked) {
      if (out.Attributes.name !== meta.new_name || !(out.Attributes.score > 31337)) {
        throw new Error("update returned " + JSON.stringify(out.Attributes));
      }
      checked = true;
    }
    return 1;
  },
  async query() {
    const out = await doc.send(new QueryCommand({
      TableName: T, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": PK },
    }));
    return itemsOf(out.Items, 1000);
  },
  async scan() {
    return itemsOf((await doc.send(new ScanCommand({ TableName: T }))).Items, 1000);
  },
  async batch_write() {
    const out = await doc.send(new BatchWriteCommand({
      RequestItems: { [T]: page.slice(0, 25).map((Item) => ({ PutRequest: { Item } })) },
    }));
    if (Object.keys(out.UnprocessedItems || {}).length) throw new Error("unprocessed items");
    return 25;
  },
  async batch_get() {
    const out = await doc.send(new BatchGetCommand({ RequestItems: { [T]: { Keys: keys } } }));
    if (Object.keys(out.UnprocessedKeys || {}).length) throw new Error("unprocessed keys");
    return itemsOf(out.Responses[T], 100);
  },
};

const fn = steps[workload];
if (!fn) throw new Error(`unknown workload ${workload}`);
for (let i = 0; i < warmup; i++) await fn();
let items = 0;
const c0 = process.cpuUsage(), w0 = process.hrtime.bigint();
for (let i = 0; i < calls; i++) items += await fn();
const c = process.cpuUsage(c0), wall = Number(process.hrtime.bigint() - w0) / 1e3;
console.log("RESULT " + JSON.stringify({
  workload, items, requests: warmup + calls,
  cpu_us_per_item: (c.user + c.system) / items, wall_us_per_item: wall / items,
}));
doc.destroy();
