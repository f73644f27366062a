package marketplace

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrUnknownAdapter is returned by Registry.New for a name nobody registered.
var ErrUnknownAdapter = errors.New("unknown marketplace adapter")

// Config is what an adapter constructor gets from the config file. Token is a
// secret: adapters must never log it or put it in an error.
type Config struct {
	ID             string        // marketplace ID (lock and ledger keys use it)
	BaseURL        string        // API root
	Token          string        // bearer token (secret)
	Account        string        // optional stable account name; adapters derive one if empty
	RequestTimeout time.Duration // per HTTP request; adapters pick a default when 0
	HTTPClient     *http.Client  // optional; adapters build one when nil
	Logger         *zap.Logger   // optional
	// Options carries adapter-specific settings from the config file.
	Options map[string]string
}

// Factory builds an Adapter from its config.
type Factory func(Config) (Adapter, error)

// Registry maps adapter names (the "adapter:" key in config) to factories. It is
// a value built by the binary's wiring, not a package-level global.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]Factory{}} }

// Register adds a factory. Registering a name twice is a wiring bug and is
// reported, not silently overwritten.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" || f == nil {
		return fmt.Errorf("marketplace: register %q: empty name or nil factory", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		return fmt.Errorf("marketplace: adapter %q registered twice", name)
	}
	r.m[name] = f
	return nil
}

// Names lists the registered adapter names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New builds the adapter registered as name.
func (r *Registry) New(name string, cfg Config) (Adapter, error) {
	r.mu.RLock()
	f, ok := r.m[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownAdapter, name, strings.Join(r.Names(), ", "))
	}
	a, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("marketplace %q: adapter %q: %w", cfg.ID, name, err)
	}
	return a, nil
}
