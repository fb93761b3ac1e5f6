package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a backend from its URL (the whole URL, scheme included: some
// backend URLs, like sqlite://:memory:, are not valid net/url URLs).
type Opener func(ctx context.Context, rawURL string, opts ...Option) (Backend, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a backend available under a URL scheme (lowercase, without
// "://"). Backends call it from init. It panics if the scheme is empty, the
// opener nil, or the scheme already registered, as database/sql.Register does.
func Register(scheme string, opener Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	scheme = strings.ToLower(scheme)
	if scheme == "" || opener == nil {
		panic("authdb: Register needs a scheme and an opener")
	}
	if _, dup := registry[scheme]; dup {
		panic("authdb: Register called twice for scheme " + scheme)
	}
	registry[scheme] = opener
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Scheme returns the lowercase scheme of a backend URL ("" if it has none).
func Scheme(rawURL string) string {
	i := strings.Index(rawURL, "://")
	if i <= 0 {
		return ""
	}
	return strings.ToLower(rawURL[:i])
}

// Open opens a backend by URL with the opener registered for its scheme. A
// URL without a scheme or with an unknown one is an error that lists the
// registered schemes. Only backends whose package was imported are known:
// import github.com/authdb/authdb (authdb.Open) for every built-in one.
func Open(ctx context.Context, rawURL string, opts ...Option) (Backend, error) {
	scheme := Scheme(rawURL)
	if scheme == "" {
		return nil, fmt.Errorf("authdb: open: %w: url: %q has no scheme (want one of %s)",
			ErrInvalidInput, Redact(rawURL), knownSchemes())
	}
	registryMu.RLock()
	opener := registry[scheme]
	registryMu.RUnlock()
	if opener == nil {
		return nil, fmt.Errorf("authdb: open: %w: url: unknown scheme %q (known: %s)",
			ErrInvalidInput, scheme, knownSchemes())
	}
	return opener(ctx, rawURL, opts...)
}

func knownSchemes() string {
	s := Schemes()
	if len(s) == 0 {
		return "none registered; import github.com/authdb/authdb"
	}
	return strings.Join(s, ", ")
}
