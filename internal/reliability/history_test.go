package reliability

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/authdb/authdb/backend"
)

// Outcomes in Jepsen's vocabulary: every operation of a fault test ends
// ok (it happened), fail (it did not) or info (indeterminate: the backend
// said backend.ErrOutcomeUnknown). A checker reads the whole history
// against the database afterwards: no ok write missing, no fail write
// present, info either way; and no wrong verdict (ErrTokenReused,
// ErrAlreadyUsed, ErrAlreadyExists) for a caller's own write.
type outcome string

const (
	okOutcome   outcome = "ok"
	failOutcome outcome = "fail"
	infoOutcome outcome = "info"
)

// classify turns a call's error into its outcome.
func classify(err error) outcome {
	switch {
	case err == nil:
		return okOutcome
	case errors.Is(err, backend.ErrOutcomeUnknown):
		return infoOutcome
	}
	return failOutcome
}

// wrongVerdict reports whether err is a security verdict, which a
// caller's own write must never get.
func wrongVerdict(err error) bool {
	return errors.Is(err, backend.ErrTokenReused) || errors.Is(err, backend.ErrAlreadyUsed) ||
		errors.Is(err, backend.ErrAlreadyExists)
}

// event is one operation of a history.
type event struct {
	op      string // what was called, e.g. "rotate"
	key     string // what it wrote (a JTI, a code), for the checker
	outcome outcome
	err     error
}

// history is a goroutine-safe log of events.
type history struct {
	mu     sync.Mutex
	events []event
}

func (h *history) add(op, key string, err error) outcome {
	o := classify(err)
	h.mu.Lock()
	h.events = append(h.events, event{op: op, key: key, outcome: o, err: err})
	h.mu.Unlock()
	return o
}

// counts returns the number of events by outcome.
func (h *history) counts() (ok, fail, info int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		switch e.outcome {
		case okOutcome:
			ok++
		case failOutcome:
			fail++
		case infoOutcome:
			info++
		}
	}
	return ok, fail, info
}

// check reads each written key's effect with applied (from the database,
// after the faults) and returns the checker's findings: ok writes missing
// (a key some call reported ok is not applied), fail writes present (a key
// every call of which failed is applied; info calls leave a key either
// way), and wrong verdicts. Several calls may write one key (a caller's
// retries of one rotation).
func (h *history) check(ctx context.Context, applied func(ctx context.Context, e event) (bool, error)) (missing, present, wrong int, problems []string, err error) {
	h.mu.Lock()
	events := append([]event(nil), h.events...)
	h.mu.Unlock()
	type keyState struct {
		first      event
		ok, info   bool
		lastFailed error
	}
	keys := map[string]*keyState{}
	var order []string
	for _, e := range events {
		if e.err != nil && wrongVerdict(e.err) {
			wrong++
			problems = append(problems, fmt.Sprintf("%s %s: wrong verdict: %v", e.op, e.key, e.err))
		}
		k := keys[e.op+" "+e.key]
		if k == nil {
			k = &keyState{first: e}
			keys[e.op+" "+e.key] = k
			order = append(order, e.op+" "+e.key)
		}
		switch e.outcome {
		case okOutcome:
			k.ok = true
		case infoOutcome:
			k.info = true
		default:
			k.lastFailed = e.err
		}
	}
	for _, name := range order {
		k := keys[name]
		if k.info && !k.ok {
			continue
		}
		a, aerr := applied(ctx, k.first)
		if aerr != nil {
			return 0, 0, 0, nil, fmt.Errorf("check %s: %w", name, aerr)
		}
		switch {
		case k.ok && !a:
			missing++
			problems = append(problems, fmt.Sprintf("%s: ok but not in the database", name))
		case !k.ok && a:
			present++
			problems = append(problems, fmt.Sprintf("%s: failed (%v) but in the database", name, k.lastFailed))
		}
	}
	return missing, present, wrong, problems, nil
}

// errorSample groups the history's errors by message (JTIs and codes
// replaced), for the test log.
func (h *history) errorSample() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	for _, e := range h.events {
		if e.err != nil {
			n[string(e.outcome)+": "+uuidPattern.ReplaceAllString(e.err.Error(), "<id>")]++
		}
	}
	var lines []string
	for msg, c := range n {
		lines = append(lines, fmt.Sprintf("  %4d× %s", c, msg))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// logHistory logs the history's figures under name, and fails t on any
// finding of check.
func logHistory(t *testing.T, name string, h *history, missing, present, wrong int, problems []string) {
	t.Helper()
	ok, fail, info := h.counts()
	t.Logf("%s: %d operations: %d ok, %d fail, %d info; checker: %d ok writes missing, %d failed writes present, %d wrong verdicts",
		name, ok+fail+info, ok, fail, info, missing, present, wrong)
	if s := h.errorSample(); s != "" {
		t.Logf("%s errors:\n%s", name, s)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
