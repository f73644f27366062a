// Package redisx holds the one piece of Redis plumbing the lock, the ledger
// and the bid budget share: a Lua script that can be sent with go-redis'
// retries switched off.
package redisx

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Processor is what runs a command: every go-redis client and pipeline.
type Processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// Script is a Lua script, sent by SHA1 with a fall-back to its source.
//
// go-redis sends a command again when its connection fails after the
// command was written (MaxRetries, 3 by default), so a script whose reply
// was lost runs twice. Run allows that and is for scripts that are safe to
// run twice with the same arguments; RunOnce does not, for the others.
type Script struct {
	src string
	*redis.Script
}

// NewScript wraps src.
func NewScript(src string) *Script { return &Script{src: src, Script: redis.NewScript(src)} }

// Source is the script's Lua text.
func (s *Script) Source() string { return s.src }

// RunOnce runs the script with the client's retries off for this call: a
// network error then means it ran once or not at all, never twice. The
// caller decides what to do about not knowing which.
func (s *Script) RunOnce(ctx context.Context, rdb Processor, keys []string, args ...any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, evalArgs("evalsha", s.Hash(), keys, args)...)
	_ = rdb.Process(ctx, noRetry{cmd})
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		// Nothing ran; send the source (which also caches it).
		cmd = redis.NewCmd(ctx, evalArgs("eval", s.src, keys, args)...)
		_ = rdb.Process(ctx, noRetry{cmd})
	}
	return cmd
}

// noRetry marks a command go-redis must not resend after a network error
// (go-redis consults Cmder.NoRetry before every retry, also on Cluster).
type noRetry struct{ *redis.Cmd }

func (noRetry) NoRetry() bool { return true }

func evalArgs(verb, script string, keys []string, args []any) []any {
	out := make([]any, 0, 3+len(keys)+len(args))
	out = append(out, verb, script, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	return append(out, args...)
}
