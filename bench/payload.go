package main

import (
	"bytes"
	"math"
	"strconv"
)

// Phases of an event, carried in its payload so that any process
// receiving it knows what to do with it without being told.
const (
	phaseWarmup   = 'w' // counted for loss, not for latency
	phaseMeasured = 'm' // counted for loss and latency
	phaseBehind   = 's' // published while streams were away (storm): catch-up, not latency
)

// appendPayload appends an event's data: the user it is for, its
// sequence number among that user's events (from 1), the unix time in
// nanoseconds when it was sent, and its phase, separated by spaces:
// "u3f9a-17 42 1795686067123456789 m". Plain text, so that it is the same
// bytes in a noticed entry, a POST body and an Nchan message.
func appendPayload(dst []byte, user string, seq int64, sentNs int64, phase byte) []byte {
	dst = append(dst, user...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, ' ', phase)
	return dst
}

// payload is a parsed event data; user aliases the parsed bytes.
type payload struct {
	user   []byte
	seq    int64
	sentNs int64
	phase  byte
}

// parsePayload reads what appendPayload wrote; ok is false for anything
// else.
func parsePayload(b []byte) (p payload, ok bool) {
	user, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok || len(user) == 0 {
		return p, false
	}
	seq, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return p, false
	}
	sent, phase, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(phase) != 1 {
		return p, false
	}
	var err error
	if p.seq, err = parseDigits(seq); err != nil || p.seq < 1 {
		return p, false
	}
	if p.sentNs, err = parseDigits(sent); err != nil || p.sentNs < 1 {
		return p, false
	}
	switch phase[0] {
	case phaseWarmup, phaseMeasured, phaseBehind:
	default:
		return p, false
	}
	p.user, p.phase = user, phase[0]
	return p, true
}

// parseDigits parses a positive decimal without a leading zero, without
// allocating (unlike strconv.ParseInt(string(b))).
func parseDigits(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 19 || b[0] == '0' {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, strconv.ErrRange
		}
		n = n*10 + d
	}
	return n, nil
}
