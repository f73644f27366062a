package lock

import (
	_ "embed"

	"github.com/bidder/bidder/internal/redisx"
)

// The scripts. refresh is safe to run twice; acquire and release are not
// (a second acquire finds the key its first run took and reports it busy,
// leaving a lock held by nobody for a TTL; a second release finds nothing
// and reports the lock lost), so they are sent with client retries off and
// the Manager handles a lost reply itself, knowing what its first attempt
// may have done.
var (
	//go:embed scripts/acquire.lua
	acquireLua string
	//go:embed scripts/refresh.lua
	refreshLua string
	//go:embed scripts/release.lua
	releaseLua string
)

type scripts struct {
	acquire, refresh, release *redisx.Script
}

func newScripts() scripts {
	return scripts{
		acquire: redisx.NewScript(acquireLua),
		refresh: redisx.NewScript(refreshLua),
		release: redisx.NewScript(releaseLua),
	}
}
