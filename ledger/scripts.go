package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redisx"
)

// The scripts, one file each under scripts/, with lib.lua's helpers
// prepended. Every one is safe to run twice with the same arguments (a
// reply lost after the script ran makes go-redis send it again): each
// recognises its own earlier run by the holder it wrote, or only adds what
// is missing.
var (
	//go:embed scripts/lib.lua
	libLua string
	//go:embed scripts/claim.lua
	claimLua string
	//go:embed scripts/settle.lua
	settleLua string
	//go:embed scripts/park.lua
	parkLua string
	//go:embed scripts/resume.lua
	resumeLua string
	//go:embed scripts/discover.lua
	discoverLua string
	//go:embed scripts/due.lua
	dueLua string
	//go:embed scripts/review.lua
	reviewLua string
	//go:embed scripts/outcome.lua
	outcomeLua string
	//go:embed scripts/once.lua
	onceLua string
)

type scripts struct {
	claim, settle, park, resume, discover, due, review, outcome, once *redisx.Script
}

func newScripts() scripts {
	s := func(body string) *redisx.Script { return redisx.NewScript(libLua + "\n" + body) }
	return scripts{
		claim: s(claimLua), settle: s(settleLua), park: s(parkLua),
		resume: s(resumeLua), discover: s(discoverLua), due: s(dueLua), review: s(reviewLua),
		outcome: s(outcomeLua), once: s(onceLua),
	}
}

// reply is a script's array reply: a verdict and its details.
type reply []any

func (r reply) str(i int) string {
	if i >= len(r) {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

func (r reply) int(i int) (int64, error) {
	if i >= len(r) {
		return 0, fmt.Errorf("%w: reply %v has no element %d", ErrCorrupt, []any(r), i)
	}
	switch v := r[i].(type) {
	case int64:
		return v, nil
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: reply %v: element %d is not a number", ErrCorrupt, []any(r), i)
}

// run sends a script; with WithWaitReplicas it also sends WAIT in the same
// round trip and reports a short count as a *ReplicaError beside the reply.
func (l *Ledger) run(ctx context.Context, s *redisx.Script, keys []string, args ...any) (reply, *ReplicaError, error) {
	if l.waitReplicas <= 0 {
		v, err := s.Run(ctx, l.rdb, keys, args...).Slice()
		return reply(v), nil, err
	}
	return l.runAndWait(ctx, s, keys, args)
}

func (l *Ledger) runAndWait(ctx context.Context, s *redisx.Script, keys []string, args []any) (reply, *ReplicaError, error) {
	var target redis.Cmdable = l.rdb
	cc, isCluster := l.rdb.(*redis.ClusterClient)
	if isCluster {
		// go-redis' cluster pipeline routes a keyless WAIT to any shard (or
		// refuses it); it must follow the write on the record's master.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, nil, err
		}
		target = node
	}
	send := func(eval bool) (*redis.Cmd, *redis.Cmd) {
		pipe := target.Pipeline()
		var sc *redis.Cmd
		if eval {
			sc = pipe.Eval(ctx, s.Source(), keys, args...)
		} else {
			sc = pipe.EvalSha(ctx, s.Hash(), keys, args...)
		}
		// Pipeliner has no Wait; the reply waits at most waitTimeout, which
		// config keeps below the client's read timeout.
		wc := pipe.Do(ctx, "wait", l.waitReplicas, l.waitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		return sc, wc
	}
	sc, wc := send(false)
	if redis.HasErrorPrefix(sc.Err(), "NOSCRIPT") {
		sc, wc = send(true) // not run: send the source once
	}
	if err := sc.Err(); err != nil {
		if isCluster && isRedirect(err) {
			// The slot moved (MOVED) or is moving (ASK): the script did not
			// run on this node. Refresh the slot map and run it through the
			// cluster client, which follows the redirect, without WAIT (the
			// caller treats that as a short count).
			cc.ReloadState(ctx)
			v, err := s.Run(ctx, l.rdb, keys, args...).Slice()
			if err != nil {
				return nil, nil, err
			}
			return reply(v), &ReplicaError{Key: keys[0], Want: int64(l.waitReplicas), Err: errors.New("slot moved: written without WAIT")}, nil
		}
		return nil, nil, err
	}
	v, err := sc.Slice()
	if err != nil {
		return nil, nil, err
	}
	n, werr := wc.Int64()
	switch {
	case werr != nil:
		return reply(v), &ReplicaError{Key: keys[0], Want: int64(l.waitReplicas), Err: werr}, nil
	case n < int64(l.waitReplicas):
		return reply(v), &ReplicaError{Key: keys[0], Acked: n, Want: int64(l.waitReplicas)}, nil
	}
	return reply(v), nil, nil
}

func isRedirect(err error) bool {
	return redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")
}
