package main

import (
	"bufio"
	"errors"
	"net"
	"time"
)

// freePort is a TCP port of 127.0.0.1 free a moment ago; whoever binds it
// retries on another when it has been taken since.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pingRedis sends one PING to the Redis at addr and wants its PONG: the
// readiness check of a redis-server this tool started.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return errors.New("PING answered " + line)
	}
	return nil
}
