#!/bin/sh
# Publish to noticed from a shell: straight to Redis with redis-cli, and over
# HTTP to several users at once with curl. Settings come from the
# environment: REDIS_URL, NOTICED_URL, NOTICED_TOKEN (a token with scope
# "publish"), NOTICED_USER and NOTICED_USERS (space-separated).
set -eu

# One stream per user; the braces are a Redis Cluster hash tag.
# MAXLEN ~ 1000 keeps the stream short, as noticed's -stream-maxlen does.
# Then WAIT until REDIS_WAIT_REPLICAS replicas hold the entry (what
# noticed's -publish-replicas does for POST): Redis replicates
# asynchronously, and without it a failover can lose an acknowledged
# entry. WAIT counts what this connection wrote, so both commands go down
# one connection.
replicas=${REDIS_WAIT_REPLICAS:-0}
out=$(redis-cli -u "$REDIS_URL" <<EOF
XADD notice:{$NOTICED_USER} MAXLEN ~ 1000 * event order.shipped data '{"order":1234}'
WAIT $replicas 1000
EOF
)
echo "XADD $(echo "$out" | sed -n 1p)"
held=$(echo "$out" | sed -n 2p)
[ "$held" -ge "$replicas" ] || { echo "WAIT: $held of $replicas replicas hold the entry" >&2; exit 1; }

# Many users at once, over HTTP: a form repeats users.
set --
for u in $NOTICED_USERS; do set -- "$@" --data-urlencode "users=$u"; done
printf 'POST '
curl -sS --fail-with-body -H "Authorization: Bearer $NOTICED_TOKEN" \
  "$@" --data-urlencode 'data=maintenance at noon' "$NOTICED_URL/notice"
echo
