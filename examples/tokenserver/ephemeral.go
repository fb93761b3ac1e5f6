package main

import (
	"sync"
	"time"
)

// ephemeral is a small in-process table whose entries expire after ttl, for
// the two things authdb's tables have no column for: the client's state of a
// pending authorization flow, and the polling pace of a device code. Both
// live only as long as the flow they belong to (at most the flow's
// validity), so losing them on a restart costs at most a login in progress
// (the client then sees no state and starts again) or one slow_down. With
// several server instances, keep them where all instances see them (a small
// table beside authdb's, or a cache) or route a flow to one instance.
//
// It measures real time (time.Now, monotonic), not Config.Clock: it is about
// this process's memory and the pace of requests, not about token lifetimes.
// Its size is bounded by the number of flows started within ttl: expired
// entries are swept at most every ttl/4, when an entry is stored.
type ephemeral[V any] struct {
	ttl       time.Duration
	mu        sync.Mutex
	m         map[string]ephemeralEntry[V]
	lastSweep time.Time
}

type ephemeralEntry[V any] struct {
	v       V
	expires time.Time
}

func newEphemeral[V any](ttl time.Duration) *ephemeral[V] {
	return &ephemeral[V]{ttl: ttl, m: make(map[string]ephemeralEntry[V]), lastSweep: time.Now()}
}

// putLocked stores v under key for ttl; the caller holds e.mu.
func (e *ephemeral[V]) putLocked(key string, v V, now time.Time) {
	if now.Sub(e.lastSweep) > e.ttl/4 {
		for k, ent := range e.m {
			if now.After(ent.expires) {
				delete(e.m, k)
			}
		}
		e.lastSweep = now
	}
	e.m[key] = ephemeralEntry[V]{v: v, expires: now.Add(e.ttl)}
}

// put stores v under key for ttl.
func (e *ephemeral[V]) put(key string, v V) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.putLocked(key, v, time.Now())
}

// take removes key's entry and returns it, if it is there and live.
func (e *ephemeral[V]) take(key string) (V, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.m[key]
	delete(e.m, key)
	if !ok || time.Now().After(ent.expires) {
		var zero V
		return zero, false
	}
	return ent.v, true
}

// update replaces key's entry by fn(entry, live) atomically (live is false
// when there is none or it expired) and returns the new value. fn gets the
// current time.
func (e *ephemeral[V]) update(key string, fn func(now time.Time, v V, live bool) V) V {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.m[key]
	v := fn(now, ent.v, ok && !now.After(ent.expires))
	e.putLocked(key, v, now)
	return v
}
