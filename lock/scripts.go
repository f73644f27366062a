package lock

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The scripts run with EVALSHA and fall back to EVAL after a Redis restart
// flushed the script cache (redis.Script.Run does that).
var (
	//go:embed scripts/acquire.lua
	acquireLua string
	//go:embed scripts/refresh.lua
	refreshLua string
	//go:embed scripts/release.lua
	releaseLua string
)

type scripts struct {
	acquire, refresh, release *redis.Script
}

func newScripts() scripts {
	return scripts{
		acquire: redis.NewScript(acquireLua),
		refresh: redis.NewScript(refreshLua),
		release: redis.NewScript(releaseLua),
	}
}
