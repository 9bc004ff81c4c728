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
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: "notice:{" + os.Getenv("NOTICED_USER") + "}",
		MaxLen: 1000,
		Approx: true,
		Values: []any{"event", "order.shipped", "data", `{"order":1234}`},
	}).Result()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("XADD", id)

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
