package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Config sets how long the runner measures.
type Config struct {
	// BatchTarget is the wall time one timed batch aims at.
	BatchTarget time.Duration
	// Budget is the timed time per implementation and operation; the runner
	// makes as many rounds as fit, at least MinRounds.
	Budget    time.Duration
	MinRounds int
	MaxRounds int
	// NoCancel gives calls a context that never ends (on MySQL authdb then
	// skips kill-on-cancel); by default they get one that can.
	NoCancel bool
}

// PerCallMin is the shortest call the runner times one by one.
const PerCallMin = 5 * time.Microsecond

// MaxBatch bounds the calls of one batch (the setup of most operations
// writes rows per call).
const MaxBatch = 20000

// DefaultConfig measures about 0.8 s per implementation and operation.
var DefaultConfig = Config{BatchTarget: 80 * time.Millisecond, Budget: 800 * time.Millisecond, MinRounds: 5, MaxRounds: 40}

// ImplResult is one implementation's figures for one operation.
type ImplResult struct {
	Name       string
	PerOp      time.Duration // median over rounds of batch time / calls
	RoundTrips float64       // statements per call; NaN when not counted
	Calls      int
	Failed     int
	FirstErr   error
}

// Result is one operation on one engine.
type Result struct {
	Op, Engine string
	Rounds     int
	Batch      int
	Impls      []ImplResult // authdb first, then the baseline (if any)
	ratio      float64
}

// Ratio returns the median over rounds of authdb's time over the
// baseline's in the same round (NaN without a baseline): each round's two
// batches ran back to back, so the ratio of a round is little affected by
// what else the machine did meanwhile.
func (r Result) Ratio() float64 { return r.ratio }

// ensureOnce runs op.Once on e unless already done.
func (e *Env) ensureOnce(ctx context.Context, op Op) error {
	if op.Once == nil {
		return nil
	}
	e.mu.Lock()
	if e.once == nil {
		e.once = map[string]bool{}
	}
	done := e.once[op.Name]
	e.once[op.Name] = true
	e.mu.Unlock()
	if done {
		return nil
	}
	return op.Once(ctx, e)
}

// implRound is what one round measured of one implementation.
type implRound struct {
	times  []time.Duration // per call (sequential ops), or one batch time
	calls  int
	stmts  int64 // -1: not counted
	failed int
	err    error
}

func (ir *implRound) fail(err error) {
	ir.failed++
	if ir.err == nil {
		ir.err = err
	}
}

func counted(im *Impl) int64 {
	if im.Count == nil {
		return 0
	}
	return im.Count.Load()
}

// round runs one round of op with n calls per implementation. Sequential
// operations are interleaved call by call (authdb's call i, then the
// baseline's call i, the order alternating with i and with the round), each
// call timed on its own; batch operations (concurrent ones, clean-up) run
// one implementation's whole batch after the other's, set up just before.
func round(ctx context.Context, e *Env, op Op, impls []*Impl, n, r int, perCall bool) ([]implRound, error) {
	out := make([]implRound, len(impls))
	preps := make([]*Prepared, len(impls))
	order := make([]int, len(impls))
	for i := range order {
		order[i] = i
	}
	if r%2 == 1 {
		slices.Reverse(order)
	}
	setup := func(k int) error {
		p, err := op.Setup(ctx, e, impls[k], n)
		if err != nil {
			return fmt.Errorf("%s on %s, %s: setup: %w", op.Name, e.Engine, impls[k].Name, err)
		}
		preps[k] = p
		return nil
	}
	if err := setup(order[0]); err != nil {
		return nil, err
	}
	if preps[order[0]].Call == nil || !perCall || len(impls) == 1 { // batch operation, or nothing to interleave
		for idx, k := range order {
			if idx > 0 {
				if err := setup(k); err != nil {
					return nil, err
				}
			}
			p, im := preps[k], impls[k]
			before := counted(im)
			start := time.Now()
			failed, err := p.Run(ctx)
			d := time.Since(start)
			out[k] = implRound{times: []time.Duration{d / time.Duration(p.N)}, calls: p.N,
				stmts: counted(im) - before, failed: failed, err: err}
		}
		return out, nil
	}
	for _, k := range order[1:] {
		if err := setup(k); err != nil {
			return nil, err
		}
	}
	before := make([]int64, len(impls))
	for k, im := range impls {
		before[k] = counted(im)
		out[k].times = make([]time.Duration, 0, preps[k].N)
		out[k].calls = preps[k].N
	}
	for i := range preps[0].N {
		for idx := range order {
			k := order[(idx+i)%len(order)]
			start := time.Now()
			err := preps[k].Call(ctx, i)
			out[k].times = append(out[k].times, time.Since(start))
			if err != nil {
				out[k].fail(err)
			}
		}
	}
	for k, im := range impls {
		out[k].stmts = counted(im) - before[k]
		if preps[k].Done != nil {
			preps[k].Done()
		}
	}
	return out, nil
}

// trimmedMean is the mean of the times between the 5th and 95th
// percentile (all of them when there are fewer than 20): the calls that
// another process's burst of disk or CPU use slowed down do not count,
// the systematic cost of every call does.
func trimmedMean(times []time.Duration) time.Duration {
	ts := slices.Clone(times)
	slices.Sort(ts)
	if len(ts) >= 20 {
		cut := len(ts) / 20
		ts = ts[cut : len(ts)-cut]
	}
	var sum time.Duration
	for _, t := range ts {
		sum += t
	}
	return sum / time.Duration(len(ts))
}

// Run measures op on every implementation of e, interleaved (see round),
// in rounds until cfg.Budget of measured time per implementation.
//
// Sequential operations: µs/op is the trimmed mean (trimmedMean) of every
// call's time, and the ratio that of authdb's over the baseline's. Batch
// operations: µs/op is the median over rounds of batch time / calls, and
// the ratio the median over rounds of the two batches' ratio.
func Run(ctx context.Context, e *Env, op Op, cfg Config) (Result, error) {
	// Calls get a context that can end, as a server's requests do (on
	// MySQL, authdb then runs autocommit writes so that it can kill them).
	if !cfg.NoCancel {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
	}
	if err := e.ensureOnce(ctx, op); err != nil {
		return Result{}, fmt.Errorf("%s on %s: load: %w", op.Name, e.Engine, err)
	}
	impls := e.Impls()
	// Warm up and estimate the cost of a call.
	warm, err := round(ctx, e, op, impls, 10, 0, true)
	if err != nil {
		return Result{}, err
	}
	var est time.Duration
	for k, w := range warm {
		if w.err != nil {
			return Result{}, fmt.Errorf("%s on %s, %s: %w", op.Name, e.Engine, impls[k].Name, w.err)
		}
		est = max(est, trimmedMean(w.times))
	}
	est = max(est, 100*time.Nanosecond)
	target, maxRounds := cfg.BatchTarget, cfg.MaxRounds
	// Calls shorter than PerCallMin are timed by the batch: reading the
	// clock around each would weigh on them.
	perCall := est >= PerCallMin
	if !perCall || len(impls) == 1 || (len(warm[0].times) == 1 && warm[0].calls > 1) {
		// A batch operation: its ratio is a median over rounds, so make
		// more, shorter rounds.
		target, maxRounds = target/4, maxRounds*2
	}
	n := min(max(int(target/est), Parallelism), MaxBatch)
	if op.MaxBatch > 0 {
		n = min(n, op.MaxBatch)
	}
	rounds := int(cfg.Budget / max(est*time.Duration(n), time.Millisecond))
	rounds = min(max(rounds, cfg.MinRounds), maxRounds)

	res := Result{Op: op.Name, Engine: e.Engine, Rounds: rounds, Batch: n, ratio: math.NaN()}
	all := make([]implRound, len(impls)) // pooled over rounds
	var roundRatios []float64
	batchOp := false
	for r := range rounds {
		rs, err := round(ctx, e, op, impls, n, r+1, perCall)
		if err != nil {
			return Result{}, err
		}
		batchOp = len(rs[0].times) == 1 && rs[0].calls > 1
		for k, ir := range rs {
			a := &all[k]
			a.times = append(a.times, ir.times...)
			a.calls += ir.calls
			a.stmts += ir.stmts
			a.failed += ir.failed
			if a.err == nil {
				a.err = ir.err
			}
		}
		if len(rs) == 2 {
			roundRatios = append(roundRatios, float64(trimmedMean(rs[0].times))/float64(trimmedMean(rs[1].times)))
		}
	}
	for k, im := range impls {
		a := all[k]
		ir := ImplResult{Name: im.Name, RoundTrips: math.NaN(), Calls: a.calls, Failed: a.failed, FirstErr: a.err}
		if batchOp {
			ts := slices.Clone(a.times)
			slices.Sort(ts)
			ir.PerOp = ts[len(ts)/2]
		} else {
			ir.PerOp = trimmedMean(a.times)
		}
		if im.Count != nil {
			ir.RoundTrips = float64(a.stmts) / float64(a.calls)
		}
		res.Impls = append(res.Impls, ir)
	}
	if len(impls) == 2 {
		if batchOp {
			slices.Sort(roundRatios)
			res.ratio = roundRatios[len(roundRatios)/2]
		} else {
			res.ratio = float64(res.Impls[0].PerOp) / float64(res.Impls[1].PerOp)
		}
	}
	return res, nil
}

// WriteTable prints results as one Markdown table: operation, engine,
// authdb µs/op, baseline µs/op (the implementations' names: wrapped and
// unwrapped for NewOtelEnv), ratio, round trips (authdb/baseline), with
// failed calls, if any, noted after the operation.
func WriteTable(w io.Writer, results []Result) error {
	first, second := "authdb", "baseline"
	if len(results) > 0 && len(results[0].Impls) == 2 {
		first, second = results[0].Impls[0].Name, results[0].Impls[1].Name
	}
	rows := [][]string{{"operation", "engine", first + " µs/op", second + " µs/op", "ratio", "round trips"}}
	for _, r := range results {
		a := r.Impls[0]
		base, ratio, rt := "-", "-", "-"
		if len(r.Impls) > 1 {
			b := r.Impls[1]
			base = us(b.PerOp)
			ratio = fmt.Sprintf("%.2f", r.Ratio())
			rt = rtString(a.RoundTrips) + "/" + rtString(b.RoundTrips)
		}
		name := r.Op
		for _, ir := range r.Impls {
			if ir.Failed > 0 {
				name += fmt.Sprintf(" [%s: %d of %d calls failed: %v]", ir.Name, ir.Failed, ir.Calls, ir.FirstErr)
			}
		}
		rows = append(rows, []string{name, r.Engine, us(a.PerOp), base, ratio, rt})
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i < 2 {
				b.WriteString("| " + c + pad + " ")
			} else {
				b.WriteString("| " + pad + c + " ")
			}
		}
		b.WriteString("|\n")
	}
	line(rows[0])
	for i, wd := range width {
		if i < 2 {
			b.WriteString("|" + strings.Repeat("-", wd+2))
		} else {
			b.WriteString("|" + strings.Repeat("-", wd+1) + ":")
		}
	}
	b.WriteString("|\n")
	for _, row := range rows[1:] {
		line(row)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func us(d time.Duration) string {
	v := float64(d) / float64(time.Microsecond)
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func rtString(v float64) string {
	if math.IsNaN(v) {
		return "?"
	}
	if math.Abs(v-math.Round(v)) < 0.005 {
		return fmt.Sprintf("%d", int(math.Round(v)))
	}
	return fmt.Sprintf("%.2f", v)
}
