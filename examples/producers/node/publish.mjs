// Publish to noticed from Node.js: straight to Redis with the "redis"
// package from npm, and over HTTP to several users at once. Settings come
// from the environment: REDIS_URL, NOTICED_URL, NOTICED_TOKEN (a token with
// scope "publish"), NOTICED_USER and NOTICED_USERS (space-separated).
import { createClient } from "redis";

const env = process.env;
const redis = await createClient({ url: env.REDIS_URL }).connect();

// One stream per user; the braces are a Redis Cluster hash tag.
// MAXLEN ~ 1000 keeps the stream short, as noticed's -stream-maxlen does.
const id = await redis.xAdd(
  `notice:{${env.NOTICED_USER}}`,
  "*",
  { event: "order.shipped", data: JSON.stringify({ order: 1234 }) },
  { TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: 1000 } },
);
console.log("XADD", id);

// Durable before going on: WAIT until REDIS_WAIT_REPLICAS replicas hold the
// entry (what noticed's -publish-replicas does for POST). Redis replicates
// asynchronously; without this a failover can lose an acknowledged entry.
// WAIT counts what its own connection wrote: this client has one.
const replicas = Number(env.REDIS_WAIT_REPLICAS ?? 0);
const held = await redis.sendCommand(["WAIT", String(replicas), "1000"]);
if (held < replicas) throw new Error(`WAIT: ${held} of ${replicas} replicas hold the entry`);
await redis.quit();

// Many users at once, over HTTP.
const res = await fetch(env.NOTICED_URL + "/notice", {
  method: "POST",
  headers: { Authorization: "Bearer " + env.NOTICED_TOKEN, "Content-Type": "application/json" },
  body: JSON.stringify({ users: env.NOTICED_USERS.split(" "), data: "maintenance at noon" }),
});
if (!res.ok) throw new Error(`POST /notice: ${res.status} ${await res.text()}`);
console.log("POST", (await res.json()).ids);
