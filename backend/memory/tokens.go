package memory

import (
	"bytes"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// tokenStore holds the refresh tokens. It is laid out for cheap look-ups
// and a cheap garbage collector at millions of tokens:
//
//   - Each subject's tokens are one slice sorted by JTI (bytewise, so by
//     creation time), so listing a subject copies one contiguous slice,
//     O(that subject's tokens) whatever the store's size.
//   - Tokens and the JTI index hold no pointers (a subject is an index into
//     subs, a scope an index into the interned scopes), so the collector
//     does not scan them.
//   - Scopes are interned with a reference count: a million tokens with the
//     same scope keep one copy of it.
//
// It is not safe for concurrent use; Backend guards it with its mutex.
type tokenStore struct {
	subIndex map[string]int32 // subject -> index in subs
	subs     []subject
	freeSubs []int32 // indexes of deleted subjects, for reuse

	byJTI map[uuid.UUID]int32 // jti -> index in subs of its subject

	scopeIndex map[string]int32 // scope -> index in scopes
	scopes     []scopeEntry
	freeScopes []int32
}

type subject struct {
	sub    string
	tokens []token // sorted by jti, bytewise
}

type token struct {
	jti        uuid.UUID
	family     uuid.UUID // the family's id: jti for a family's first token
	replacedBy uuid.UUID // the successor set by rotation; uuid.Nil if none
	scope      int32     // index in tokenStore.scopes
	revoked    bool
}

type scopeEntry struct {
	s    string
	refs int
}

func newTokenStore() *tokenStore {
	return &tokenStore{
		subIndex:   map[string]int32{},
		byJTI:      map[uuid.UUID]int32{},
		scopeIndex: map[string]int32{},
	}
}

func compareJTI(t token, id uuid.UUID) int { return bytes.Compare(t.jti[:], id[:]) }

// len returns the number of tokens.
func (ts *tokenStore) len() int { return len(ts.byJTI) }

// exists reports whether jti is stored.
func (ts *tokenStore) exists(jti uuid.UUID) bool {
	_, ok := ts.byJTI[jti]
	return ok
}

// lookup returns the subject index and the position of jti in its tokens.
func (ts *tokenStore) lookup(jti uuid.UUID) (si int32, i int, ok bool) {
	si, ok = ts.byJTI[jti]
	if !ok {
		return 0, 0, false
	}
	i, ok = slices.BinarySearchFunc(ts.subs[si].tokens, jti, compareJTI)
	return si, i, ok
}

// subjectIndex returns the index of sub, adding it when add is set.
func (ts *tokenStore) subjectIndex(sub string, add bool) (int32, bool) {
	if si, ok := ts.subIndex[sub]; ok {
		return si, true
	}
	if !add {
		return 0, false
	}
	s := subject{sub: strings.Clone(sub)} // keep no caller's buffer alive
	si := place(&ts.subs, &ts.freeSubs, s)
	ts.subIndex[s.sub] = si
	return si, true
}

// place stores v in a free slot of *slots (one listed in *free) or, when
// none is free, in a new one at the end, and returns its index.
func place[T any](slots *[]T, free *[]int32, v T) int32 {
	if n := len(*free); n > 0 {
		i := (*free)[n-1]
		*free = (*free)[:n-1]
		(*slots)[i] = v
		return i
	}
	*slots = append(*slots, v)
	return int32(len(*slots) - 1)
}

// internScope returns the index of scope with its reference count raised.
func (ts *tokenStore) internScope(scope string) int32 {
	if i, ok := ts.scopeIndex[scope]; ok {
		ts.scopes[i].refs++
		return i
	}
	e := scopeEntry{s: strings.Clone(scope), refs: 1}
	i := place(&ts.scopes, &ts.freeScopes, e)
	ts.scopeIndex[e.s] = i
	return i
}

// releaseScope lowers the reference count of scope i, freeing it at zero.
func (ts *tokenStore) releaseScope(i int32) {
	e := &ts.scopes[i]
	if e.refs--; e.refs == 0 {
		delete(ts.scopeIndex, e.s)
		*e = scopeEntry{}
		ts.freeScopes = append(ts.freeScopes, i)
	}
}

// insert adds a CREATED token, the first of its own family; the caller has
// checked that jti is free.
func (ts *tokenStore) insert(jti uuid.UUID, sub, scope string) {
	si, _ := ts.subjectIndex(sub, true)
	ts.insertAt(si, token{jti: jti, family: jti, scope: ts.internScope(scope)})
}

// insertAt adds t to subject si, keeping its tokens sorted. The caller has
// checked that t.jti is free and counted t's scope reference.
func (ts *tokenStore) insertAt(si int32, t token) {
	s := &ts.subs[si]
	if n := len(s.tokens); n == 0 || compareJTI(s.tokens[n-1], t.jti) < 0 {
		s.tokens = append(s.tokens, t) // the usual case: UUIDv7s grow with time
	} else {
		i, _ := slices.BinarySearchFunc(s.tokens, t.jti, compareJTI)
		s.tokens = slices.Insert(s.tokens, i, t)
	}
	ts.byJTI[t.jti] = si
}

// rotate revokes token i of subject si, sets its successor to newJTI and
// adds newJTI, CREATED, with the same subject, scope and family. It returns
// the old token as stored after the call. The caller has checked that
// newJTI is free and the old token not revoked.
func (ts *tokenStore) rotate(si int32, i int, newJTI uuid.UUID) backend.RefreshToken {
	s := &ts.subs[si]
	s.tokens[i].revoked = true
	s.tokens[i].replacedBy = newJTI
	old := ts.record(si, i)
	scope := s.tokens[i].scope
	ts.scopes[scope].refs++
	ts.insertAt(si, token{jti: newJTI, family: s.tokens[i].familyID(), scope: scope})
	return old
}

// familyID is the id of t's family: its family, or its own JTI if it has none.
func (t token) familyID() uuid.UUID {
	if t.family != uuid.Nil {
		return t.family
	}
	return t.jti
}

// revokeFamily revokes every token of subject si in family fam (a family
// never leaves its subject: rotation keeps the subject) and returns how
// many changed. O(the subject's tokens).
func (ts *tokenStore) revokeFamily(si int32, fam uuid.UUID) int64 {
	var n int64
	toks := ts.subs[si].tokens
	for i := range toks {
		if !toks[i].revoked && toks[i].familyID() == fam {
			toks[i].revoked = true
			n++
		}
	}
	return n
}

// record returns the public form of token i of subject si.
func (ts *tokenStore) record(si int32, i int) backend.RefreshToken {
	s := &ts.subs[si]
	t := s.tokens[i]
	status := backend.TokenCreated
	if t.revoked {
		status = backend.TokenRevoked
	}
	return backend.RefreshToken{JTI: t.jti, Status: status, Scope: ts.scopes[t.scope].s, Sub: s.sub,
		FamilyID: t.family, ReplacedBy: t.replacedBy}
}

// revoke revokes token i of subject si.
func (ts *tokenStore) revoke(si int32, i int) { ts.subs[si].tokens[i].revoked = true }

// revokeAll revokes every token of subject si and returns how many changed.
func (ts *tokenStore) revokeAll(si int32) int64 {
	var n int64
	toks := ts.subs[si].tokens
	for i := range toks {
		if !toks[i].revoked {
			toks[i].revoked = true
			n++
		}
	}
	return n
}

// listSubject returns the live tokens of sub, ordered by JTI; nil if none.
func (ts *tokenStore) listSubject(sub string) []backend.RefreshToken {
	si, ok := ts.subjectIndex(sub, false)
	if !ok {
		return nil
	}
	toks := ts.subs[si].tokens
	n := 0
	for i := range toks {
		if !toks[i].revoked {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]backend.RefreshToken, 0, n)
	for i := range toks {
		if !toks[i].revoked {
			out = append(out, ts.record(si, i))
		}
	}
	return out
}

// listAll returns every token, revoked ones included, ordered by JTI; nil
// if none.
func (ts *tokenStore) listAll() []backend.RefreshToken {
	if len(ts.byJTI) == 0 {
		return nil
	}
	out := make([]backend.RefreshToken, 0, len(ts.byJTI))
	for si := range ts.subs {
		for i := range ts.subs[si].tokens {
			out = append(out, ts.record(int32(si), i))
		}
	}
	slices.SortFunc(out, func(x, y backend.RefreshToken) int { return bytes.Compare(x.JTI[:], y.JTI[:]) })
	return out
}

// deleteBefore deletes every token whose JTI is bytewise below bound and
// returns the count. Each subject's tokens are sorted, so its expired
// tokens are a prefix: the cost is one binary search per subject plus the
// deletions.
func (ts *tokenStore) deleteBefore(bound uuid.UUID) int64 {
	var n int64
	for si := range ts.subs {
		s := &ts.subs[si]
		if s.sub == "" && s.tokens == nil {
			continue // a free slot
		}
		k, _ := slices.BinarySearchFunc(s.tokens, bound, compareJTI)
		if k == 0 {
			continue
		}
		for _, t := range s.tokens[:k] {
			delete(ts.byJTI, t.jti)
			ts.releaseScope(t.scope)
		}
		n += int64(k)
		if k == len(s.tokens) {
			delete(ts.subIndex, s.sub)
			*s = subject{}
			ts.freeSubs = append(ts.freeSubs, int32(si))
			continue
		}
		s.tokens = slices.Clone(s.tokens[k:]) // release the deleted prefix
	}
	return n
}
