"""Publish to noticed from Python: straight to Redis with redis-py, and over
HTTP to several users at once. Settings come from the environment:
REDIS_URL, NOTICED_URL, NOTICED_TOKEN (a token with scope "publish"),
NOTICED_USER and NOTICED_USERS (space-separated)."""
import json
import os
import urllib.request

import redis

r = redis.Redis.from_url(os.environ["REDIS_URL"])
user = os.environ["NOTICED_USER"]

# One stream per user; the braces are a Redis Cluster hash tag.
# MAXLEN ~ 1000 keeps the stream short, as noticed's -stream-maxlen does.
# Then WAIT until REDIS_WAIT_REPLICAS replicas hold the entry (what noticed's
# -publish-replicas does for POST): Redis replicates asynchronously, and
# without it a failover can lose an acknowledged entry. WAIT counts what its
# own connection wrote, so both go down one pipeline.
replicas = int(os.environ.get("REDIS_WAIT_REPLICAS", "0"))
pipe = r.pipeline(transaction=False)
pipe.xadd(
    f"notice:{{{user}}}",
    {"event": "order.shipped", "data": json.dumps({"order": 1234}, separators=(",", ":"))},
    maxlen=1000,
    approximate=True,
)
pipe.execute_command("WAIT", replicas, 1000)
entry_id, held = pipe.execute()
print("XADD", entry_id.decode())
if held < replicas:
    raise SystemExit(f"WAIT: {held} of {replicas} replicas hold the entry")

# Many users at once, over HTTP.
body = json.dumps({"users": os.environ["NOTICED_USERS"].split(), "data": "maintenance at noon"}).encode()
req = urllib.request.Request(
    os.environ["NOTICED_URL"] + "/notice",
    data=body,
    headers={"Authorization": "Bearer " + os.environ["NOTICED_TOKEN"], "Content-Type": "application/json"},
)
with urllib.request.urlopen(req) as resp:
    print("POST", json.load(resp)["ids"])
