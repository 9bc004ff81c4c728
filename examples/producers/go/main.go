// Command go publishes to noticed from Go: straight to Redis with go-redis,
// and over HTTP to several users at once. Settings come from the
// environment: REDIS_URL, NOTICED_URL, NOTICED_TOKEN (a token with scope
// "publish"), NOTICED_USER and NOTICED_USERS (space-separated).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

func main() {
	ctx := context.Background()
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	// One stream per user; the braces are a Redis Cluster hash tag.
	// MAXLEN ~ 1000 keeps the stream short, as noticed's -stream-maxlen does.
	// Then WAIT until REDIS_WAIT_REPLICAS replicas hold the entry (what
	// noticed's -publish-replicas does for POST): Redis replicates
	// asynchronously, and without it a failover can lose an acknowledged
	// entry. WAIT counts what its own connection wrote, so both go down one
	// pipeline.
	replicas, _ := strconv.Atoi(os.Getenv("REDIS_WAIT_REPLICAS"))
	pipe := rdb.Pipeline()
	xadd := pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: "notice:{" + os.Getenv("NOTICED_USER") + "}",
		MaxLen: 1000,
		Approx: true,
		Values: []any{"event", "order.shipped", "data", `{"order":1234}`},
	})
	wait := pipe.Do(ctx, "WAIT", replicas, 1000) // milliseconds
	if _, err := pipe.Exec(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("XADD", xadd.Val())
	if held, _ := wait.Int64(); held < int64(replicas) {
		log.Fatalf("WAIT: %d of %d replicas hold the entry", held, replicas)
	}

	// Many users at once, over HTTP.
	body, _ := json.Marshal(map[string]any{"users": strings.Fields(os.Getenv("NOTICED_USERS")), "data": "maintenance at noon"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, os.Getenv("NOTICED_URL")+"/notice", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("NOTICED_TOKEN"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("POST /notice: %s %s", resp.Status, answer)
	}
	fmt.Printf("POST %s\n", answer)
}
