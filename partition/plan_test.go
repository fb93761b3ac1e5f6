package partition

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// month returns the first instant of month m of year y, UTC.
func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

// monthRange returns the months from first to last inclusive.
func monthRange(first, last time.Time) []time.Time {
	var out []time.Time
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		out = append(out, m)
	}
	return out
}

func names(months []time.Time) string {
	s := make([]string, len(months))
	for i, m := range months {
		s[i] = Name(m)
	}
	return strings.Join(s, " ")
}

func TestName(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		want string
	}{
		{month(2026, time.March), "p_2026_3"},
		{time.Date(2026, time.December, 31, 23, 59, 59, 0, time.UTC), "p_2026_12"},
		// 2027-01-01 00:30 in UTC+1 is still December 2026 in UTC.
		{time.Date(2027, time.January, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "p_2026_12"},
	} {
		if got := Name(c.in); got != c.want {
			t.Errorf("Name(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBoundary(t *testing.T) {
	m := month(2026, time.April)
	b := Boundary(m)
	// 2026-04-01T00:00:00Z = 1775001600000 ms = 0x019d46570000 (date -ud 2026-04-01 +%s).
	if want := "019d465700007000" + "8000000000000000"; b != want {
		t.Fatalf("Boundary(%v) = %s, want %s", m, b, want)
	}
	if b != strings.ToLower(b) || len(b) != 32 {
		t.Fatalf("Boundary = %q: want 32 lowercase hex digits", b)
	}
	id, err := uuid.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !backend.IsUUIDv7(id) || !backend.UUIDv7Time(id).Equal(m) {
		t.Fatalf("Boundary %s: not the UUIDv7 of %v", b, m)
	}
	// Every JTI of the month before sorts below it, every JTI from it on at or above.
	for _, c := range []struct {
		at    time.Time
		below bool
	}{
		{m.Add(-time.Millisecond), true},
		{m, false},
		{m.Add(time.Millisecond), false},
	} {
		jti := backend.LowestUUIDv7(c.at)
		jti[15] = 0xff // random bits set
		if got := backend.HexJTI(jti) < b; got != c.below {
			t.Errorf("JTI at %v < boundary: %v, want %v", c.at, got, c.below)
		}
	}
}

func TestAddMonths(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		n    int
		want time.Time
	}{
		{time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC), -1, time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)},
		{time.Date(2028, 3, 31, 12, 0, 0, 0, time.UTC), -1, time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), 3, time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), -1, time.Date(2025, 12, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), -13, time.Date(2024, 12, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), 14, time.Date(2028, 1, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC), 0, time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC)},
	} {
		if got := AddMonths(c.in, c.n); !got.Equal(c.want) {
			t.Errorf("AddMonths(%v, %d) = %v, want %v", c.in, c.n, got, c.want)
		}
	}
}

// TestPlanExamples checks worked examples of Plan.
func TestPlanExamples(t *testing.T) {
	for _, c := range []struct {
		name              string
		existing          []time.Time
		now               time.Time
		retention, ahead  int
		wantDrop, wantAdd string
	}{
		{
			// Horizon = 2026-02-01 00:00 exactly: January ends there, so it goes.
			name:     "drop boundary is inclusive",
			existing: monthRange(month(2025, time.December), month(2026, time.June)),
			now:      month(2026, time.March), retention: 1, ahead: 3,
			wantDrop: "p_2025_12 p_2026_1", wantAdd: "",
		},
		{
			// One nanosecond earlier the horizon is before February 1st: January stays.
			name:     "just before the boundary",
			existing: monthRange(month(2025, time.December), month(2026, time.June)),
			now:      month(2026, time.March).Add(-time.Nanosecond), retention: 1, ahead: 3,
			wantDrop: "p_2025_12", wantAdd: "",
		},
		{
			name:     "crossing a year",
			existing: monthRange(month(2025, time.September), month(2025, time.December)),
			now:      time.Date(2025, time.November, 20, 8, 0, 0, 0, time.UTC), retention: 2, ahead: 3,
			wantDrop: "", wantAdd: "p_2026_1 p_2026_2",
		},
		{
			name:     "crossing a year backwards",
			existing: monthRange(month(2025, time.October), month(2026, time.April)),
			now:      time.Date(2026, time.January, 10, 0, 0, 0, 0, time.UTC), retention: 2, ahead: 3,
			// horizon 2025-11-10: October ends Nov 1 (dropped), November ends Dec 1 (kept).
			wantDrop: "p_2025_10", wantAdd: "",
		},
		{
			name:     "no existing partitions",
			existing: nil,
			now:      time.Date(2026, time.November, 29, 18, 0, 0, 0, time.UTC), retention: 12, ahead: 3,
			wantDrop: "", wantAdd: "p_2026_11 p_2026_12 p_2027_1 p_2027_2",
		},
		{
			name:     "no existing partitions, nothing ahead",
			existing: nil,
			now:      time.Date(2026, time.November, 29, 18, 0, 0, 0, time.UTC), retention: 0, ahead: 0,
			wantDrop: "", wantAdd: "p_2026_11",
		},
		{
			name:     "drop and add together",
			existing: monthRange(month(2025, time.January), month(2026, time.June)),
			now:      time.Date(2026, time.May, 15, 0, 0, 0, 0, time.UTC), retention: 14, ahead: 3,
			// horizon 2025-03-15: Jan and Feb 2025 end by Mar 1, March ends Apr 1 (kept).
			wantDrop: "p_2025_1 p_2025_2", wantAdd: "p_2026_7 p_2026_8",
		},
		{
			name:     "huge retention drops nothing",
			existing: monthRange(month(1999, time.January), month(2026, time.January)),
			now:      month(2026, time.January), retention: 1 << 40, ahead: 1,
			wantDrop: "", wantAdd: "p_2026_2",
		},
		{
			// 31 March - 1 month = 28 February 12:00: February ends March 1st, after it.
			name:     "clamping 31 March",
			existing: monthRange(month(2026, time.January), month(2026, time.April)),
			now:      time.Date(2026, time.March, 31, 12, 0, 0, 0, time.UTC), retention: 1, ahead: 1,
			wantDrop: "p_2026_1", wantAdd: "",
		},
		{
			// 31 January + 1 month = 28 February, still February: nothing to add.
			name:     "clamping ahead",
			existing: monthRange(month(2026, time.January), month(2026, time.February)),
			now:      time.Date(2026, time.January, 31, 0, 0, 0, 0, time.UTC), retention: 12, ahead: 1,
			wantDrop: "", wantAdd: "",
		},
		{
			name:     "unordered, duplicated, mid-month input",
			existing: []time.Time{time.Date(2026, 4, 9, 3, 0, 0, 0, time.UTC), month(2026, 3), month(2026, 4)},
			now:      month(2026, time.April), retention: 1, ahead: 1,
			wantDrop: "", wantAdd: "p_2026_5",
		},
		{
			// Months are added from the last existing one even when they are
			// dropped at once: each lagging token lands in its own month.
			name:     "lagging far behind",
			existing: []time.Time{month(2025, time.November)},
			now:      time.Date(2026, time.April, 10, 0, 0, 0, 0, time.UTC), retention: 2, ahead: 0,
			wantDrop: "p_2025_11 p_2025_12 p_2026_1", wantAdd: "p_2025_12 p_2026_1 p_2026_2 p_2026_3 p_2026_4",
		},
		{
			name:     "negative arguments count as zero",
			existing: monthRange(month(2026, time.January), month(2026, time.March)),
			now:      time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC), retention: -5, ahead: -5,
			wantDrop: "p_2026_1 p_2026_2", wantAdd: "",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			drop, add := Plan(c.existing, c.now, c.retention, c.ahead)
			if got := names(drop); got != c.wantDrop {
				t.Errorf("drop = %q, want %q", got, c.wantDrop)
			}
			if got := names(add); got != c.wantAdd {
				t.Errorf("add = %q, want %q", got, c.wantAdd)
			}
		})
	}
}

// TestPlanProperties checks Plan's invariants over random contiguous
// partition sets and random "now"s (fixed seed: reproducible).
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(20261129))
	base := month(2000, time.January)
	for i := 0; i < 4000; i++ {
		var existing []time.Time
		if rng.Intn(10) > 0 {
			first := base.AddDate(0, rng.Intn(400), 0)
			existing = monthRange(first, first.AddDate(0, rng.Intn(40), 0))
			rng.Shuffle(len(existing), func(a, b int) { existing[a], existing[b] = existing[b], existing[a] })
		}
		// now: any instant (to the second, sometimes a month's first instant) in 2000..2036.
		now := base.Add(time.Duration(rng.Int63n(int64(36*365*24*time.Hour)/int64(time.Second))) * time.Second)
		if rng.Intn(4) == 0 {
			now = MonthStart(now)
		}
		retention, ahead := rng.Intn(40), rng.Intn(30)

		drop, add := Plan(existing, now, retention, ahead)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d: existing %s, now %v, retention %d, ahead %d: drop %s, add %s: "+format,
				append([]any{i, names(existing), now, retention, ahead, names(drop), names(add)}, args...)...)
		}
		sorted := slices.Clone(existing)
		slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })

		// Added months: contiguous, increasing, right after the last existing one.
		for j, m := range add {
			if !m.Equal(MonthStart(m)) {
				fail("added %v is not a month start", m)
			}
			switch {
			case j > 0 && !m.Equal(add[j-1].AddDate(0, 1, 0)):
				fail("added months not contiguous at %s", Name(m))
			case j == 0 && len(sorted) > 0 && !m.Equal(sorted[len(sorted)-1].AddDate(0, 1, 0)):
				fail("first added month is not right after the last existing one")
			case j == 0 && len(sorted) == 0 && !m.Equal(MonthStart(now)):
				fail("with no partitions, the first added month is not the current one")
			}
		}

		// Apply the plan.
		all := slices.Concat(sorted, add)
		var kept []time.Time
		for _, m := range all {
			if !slices.ContainsFunc(drop, m.Equal) {
				kept = append(kept, m)
			}
		}
		for j := 1; j < len(drop); j++ {
			if !drop[j].After(drop[j-1]) {
				fail("drop not ascending")
			}
		}
		horizon := AddMonths(now, -retention)
		for _, m := range drop {
			if !slices.ContainsFunc(all, m.Equal) {
				fail("dropped %s is neither existing nor added", Name(m))
			}
			if m.AddDate(0, 1, 0).After(horizon) {
				fail("dropped %s ends after the horizon %v", Name(m), horizon)
			}
		}
		for _, m := range kept {
			if !m.AddDate(0, 1, 0).After(horizon) {
				fail("kept %s ends at or before the horizon %v", Name(m), horizon)
			}
		}
		// Coverage reaches now+monthsAhead, and the current month is kept.
		if len(kept) == 0 {
			fail("nothing kept")
		}
		if end := kept[len(kept)-1].AddDate(0, 1, 0); !end.After(AddMonths(now, ahead)) {
			fail("coverage ends at %v, before now+%d months", end, ahead)
		}
		if !slices.ContainsFunc(kept, MonthStart(now).Equal) && !kept[0].After(now) {
			fail("current month dropped")
		}

		// Idempotent: planning again on the result changes nothing.
		if drop2, add2 := Plan(kept, now, retention, ahead); len(drop2)+len(add2) != 0 {
			fail("second plan not empty: drop %s, add %s", names(drop2), names(add2))
		}
	}
}
