package notify

import (
	_ "embed"

	"github.com/bidder/bidder/internal/redisx"
)

// The Lua scripts, one file each under scripts/. Each is safe to run twice
// with the same arguments (go-redis sends a script again when its reply is
// lost); rate.lua run twice counts one send too many, which only delays).
var (
	//go:embed scripts/begin.lua
	beginLua string
	//go:embed scripts/clear.lua
	clearLua string
	//go:embed scripts/pop.lua
	popLua string
	//go:embed scripts/rate.lua
	rateLua string
	//go:embed scripts/unlock.lua
	unlockLua string

	// Scripts hold no state of their own (a SHA1 and a source); one set
	// serves every handler and sweeper.
	beginScript  = redisx.NewScript(beginLua)
	clearScript  = redisx.NewScript(clearLua)
	popScript    = redisx.NewScript(popLua)
	rateScript   = redisx.NewScript(rateLua)
	unlockScript = redisx.NewScript(unlockLua)
)
