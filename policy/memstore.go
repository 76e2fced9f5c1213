package policy

import (
	"context"
	"sync"
)

// MemStore is a Store that keeps the configuration in memory: for tests,
// examples and hosts that build the configuration in code. The zero value
// is an empty store (every default). It copies what goes in and out, and
// its methods may be called concurrently. It implements Watcher: Changed
// reports whether the configuration was saved or Set since the last Load.
type MemStore struct {
	mu      sync.Mutex
	cfg     *Config
	version uint64 // incremented by each Save and Set
	loaded  uint64 // version at the last Load
	saves   int
}

var (
	_ Store   = (*MemStore)(nil)
	_ Watcher = (*MemStore)(nil)
)

// NewMemStore returns a MemStore holding a copy of c (nil: empty).
func NewMemStore(c *Config) *MemStore {
	return &MemStore{cfg: c.Clone()}
}

// Load returns a copy of the stored configuration (an empty Config when
// none was stored).
func (m *MemStore) Load(ctx context.Context) (*Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loaded = m.version
	if m.cfg == nil {
		return &Config{}, nil
	}
	return m.cfg.Clone(), nil
}

// Save stores a copy of c.
func (m *MemStore) Save(ctx context.Context, c *Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = c.Clone()
	m.version++
	m.loaded = m.version // the saver knows what it saved
	m.saves++
	return nil
}

// Set stores a copy of c as another writer would (an administrator's tool,
// another node): unlike Save, it makes Changed report true until the next
// Load.
func (m *MemStore) Set(c *Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = c.Clone()
	m.version++
}

// Saves returns how many times Save succeeded.
func (m *MemStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// Changed reports whether Set stored a configuration since the last Load
// or Save.
func (m *MemStore) Changed(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version != m.loaded, nil
}
