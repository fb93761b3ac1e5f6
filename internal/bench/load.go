package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// LoadKind is an operation the load generator calls from many goroutines.
type LoadKind string

// The operations of the concurrency curve and of the maintenance runs.
const (
	LoadRotate  LoadKind = "RotateRefreshToken"
	LoadConsume LoadKind = "ConsumeDeviceFlow"
	LoadInsert  LoadKind = "InsertRefreshToken"
)

// LoadKinds is the curve's operations, in the table's order.
var LoadKinds = []LoadKind{LoadRotate, LoadConsume, LoadInsert}

// Sample is one timed call: when it started (since the run's start) and
// how long it took.
type Sample struct {
	At, Took time.Duration
	Kind     LoadKind
}

// LoadStats is what one run of the load generator measured.
type LoadStats struct {
	Calls, Failed int
	FirstErr      error
	Elapsed       time.Duration
	Lat           []time.Duration // every call's latency, sorted
	// CPU is this process's CPU time (user and system) during the run: the
	// client's work per call, the driver's included (SQLite: the engine's
	// too, as it runs in the process).
	CPU time.Duration
}

// CPUPerCall is the process's CPU time per call (0 without calls).
func (s LoadStats) CPUPerCall() time.Duration {
	if s.Calls == 0 {
		return 0
	}
	return s.CPU / time.Duration(s.Calls)
}

// Rate is calls per second.
func (s LoadStats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Calls) / s.Elapsed.Seconds()
}

// Pct returns the q-quantile (0 < q < 1) of sorted latencies (0 when none).
func Pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// merge pools two runs.
func (s *LoadStats) merge(o LoadStats) {
	s.Calls += o.Calls
	s.Failed += o.Failed
	if s.FirstErr == nil {
		s.FirstErr = o.FirstErr
	}
	s.Elapsed += o.Elapsed
	s.CPU += o.CPU
	s.Lat = append(s.Lat, o.Lat...)
}

// deviceSeq numbers the fixture's device flows: distinct user codes
// without the collisions random ones would have in big fixtures.
var deviceSeq atomic.Int64

// seqUserCode returns the i-th user code in the user-code alphabet (base 20,
// 8 digits): distinct for every i below 20^8.
func seqUserCode(i int64) string {
	var b [8]byte
	for k := 7; k >= 0; k-- {
		b[k] = backend.UserCodeAlphabet[i%int64(len(backend.UserCodeAlphabet))]
		i /= int64(len(backend.UserCodeAlphabet))
	}
	return string(b[:])
}

var idTokenJSON = func() string {
	b, err := json.Marshal(IDToken())
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// ReadyDeviceFlows stores n READY device flows created now (on SQL engines
// with one bulk insert on the admin pool, untimed and uncounted; on memory
// through the API) and returns their plain device codes.
func (e *Env) ReadyDeviceFlows(ctx context.Context, im *Impl, n int) ([]string, error) {
	codes := make([]string, n)
	if e.Admin == nil {
		var err error
		codes, err = readyDeviceFlows(ctx, im.B, n)
		return codes, err
	}
	now := time.Now()
	rows := make([][]any, n)
	for i := range rows {
		dc, err := backend.GenerateCode()
		if err != nil {
			return nil, err
		}
		codes[i] = dc
		rows[i] = []any{seqUserCode(deviceSeq.Add(1)), "READY", e.timeArg(now), clientID, scope, backend.HashCode(dc), idTokenJSON}
	}
	err := e.BulkInsert(ctx, "DeviceFlows", []string{"UserCode", "Status", "CreationTime", "ClientID", "Scope", "DeviceCode", "IDToken"}, rows)
	return codes, err
}

// LoadPlan is one run of the load generator on one implementation.
type LoadPlan struct {
	Kind       LoadKind
	Goroutines int
	Duration   time.Duration
	// Consume: the device codes to consume, shared by the goroutines; the
	// run ends early when they are used up.
	Codes []string
	// Samples, if set, receives every call (for the timelines).
	Samples *[]Sample
	// Start is the time Sample.At counts from (default: the run's start).
	Start time.Time
}

// RunLoad calls plan.Kind on im from plan.Goroutines goroutines for
// plan.Duration (rotations: each goroutine its own chain of one subject;
// inserts: new tokens of one subject per goroutine; consumes: plan.Codes),
// timing every call.
func RunLoad(ctx context.Context, im *Impl, plan LoadPlan) (LoadStats, error) {
	g := plan.Goroutines
	heads := make([]uuid.UUID, g)
	subs := make([]string, g)
	store := func(w int) backend.Backend {
		if len(im.Shards) > 0 {
			return im.Shards[w%len(im.Shards)]
		}
		return im.B
	}
	for i := range g {
		subs[i] = newSubject()
		if plan.Kind == LoadRotate {
			heads[i] = newJTI()
			if err := store(i).InsertRefreshToken(ctx, heads[i], subs[i], scope); err != nil {
				return LoadStats{}, fmt.Errorf("load %s: first token: %w", plan.Kind, err)
			}
		}
	}
	var next atomic.Int64 // consume: the next code
	type local struct {
		lat     []time.Duration
		samples []Sample
		failed  int
		err     error
	}
	locals := make([]local, g)
	var wg sync.WaitGroup
	cpu0 := procCPU()
	start := time.Now()
	origin := plan.Start
	if origin.IsZero() {
		origin = start
	}
	deadline := start.Add(plan.Duration)
	for w := range g {
		wg.Go(func() {
			// A CPU profile (-test.cpuprofile) tells the implementations
			// apart by this label: go tool pprof -tagfocus impl=authdb.
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("impl", im.Name)))
			l := &locals[w]
			l.lat = make([]time.Duration, 0, 1024)
			b := store(w)
			head := heads[w]
			for {
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					return
				}
				var err error
				switch plan.Kind {
				case LoadRotate:
					nj := newJTI()
					t0 = time.Now()
					if _, err = b.RotateRefreshToken(ctx, head, nj); err == nil {
						head = nj
					}
				case LoadInsert:
					nj := newJTI()
					t0 = time.Now()
					err = b.InsertRefreshToken(ctx, nj, subs[w], scope)
				case LoadConsume:
					i := int(next.Add(1)) - 1
					if i >= len(plan.Codes) {
						return
					}
					t0 = time.Now()
					_, err = b.ConsumeDeviceFlow(ctx, plan.Codes[i], Validity)
				}
				took := time.Since(t0)
				l.lat = append(l.lat, took)
				if plan.Samples != nil {
					l.samples = append(l.samples, Sample{At: t0.Sub(origin), Took: took, Kind: plan.Kind})
				}
				if err != nil {
					l.failed++
					if l.err == nil {
						l.err = err
					}
					if plan.Kind == LoadRotate {
						// The chain is broken: start a new one.
						head = newJTI()
						if err := b.InsertRefreshToken(ctx, head, subs[w], scope); err != nil {
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	st := LoadStats{Elapsed: time.Since(start), CPU: procCPU() - cpu0}
	for _, l := range locals {
		st.Calls += len(l.lat)
		st.Lat = append(st.Lat, l.lat...)
		st.Failed += l.failed
		if st.FirstErr == nil {
			st.FirstErr = l.err
		}
		if plan.Samples != nil {
			*plan.Samples = append(*plan.Samples, l.samples...)
		}
	}
	slices.Sort(st.Lat)
	return st, nil
}

// CurvePoint is one operation at one concurrency on one engine, every
// implementation measured in interleaved rounds.
type CurvePoint struct {
	Engine     string
	Kind       LoadKind
	Goroutines int
	Impls      []string
	Stats      []LoadStats // pooled over rounds, per implementation
	// Ratio is the median over rounds of authdb's throughput over the
	// baseline's in the same round (NaN without a baseline): > 1 is authdb
	// faster.
	Ratio float64
	// RatioLo and RatioHi are the lowest and highest of those per-round
	// ratios, and Ahead the number of the Rounds timed rounds where
	// authdb was faster: how far the median can be trusted.
	RatioLo, RatioHi float64
	Ahead            int
	Rounds           int
	Server           Counters // deltas over the point (both implementations)
	Waits            []WaitShare
	CPUBusy          float64 // machine-wide CPU busy fraction during the point
	ProcCPU          float64 // this process's CPU, in cores, during the point
	Duration         time.Duration
}

// CurveConfig sets the budget of one point.
type CurveConfig struct {
	Rounds   int           // interleaved rounds per point
	PerRound time.Duration // timed time per implementation and round
}

// DefaultCurveConfig: 3 rounds of 400 ms per implementation (1.2 s each).
var DefaultCurveConfig = CurveConfig{Rounds: 3, PerRound: 400 * time.Millisecond}

// rateGuess remembers throughputs measured, to size the next consume
// fixture.
type rateGuess struct {
	mu sync.Mutex
	m  map[string]float64
}

func (r *rateGuess) get(key string, def float64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[key]; ok {
		return v
	}
	return def
}

func (r *rateGuess) set(key string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]float64{}
	}
	r.m[key] = max(v, r.m[key]*0.5)
}

var rates rateGuess

// MeasurePoint measures kind with g goroutines on every implementation of
// e, in cfg.Rounds rounds whose order alternates, with the server's
// counters, wait events and the CPU sampled over the whole point.
func MeasurePoint(ctx context.Context, e *Env, kind LoadKind, g int, cfg CurveConfig) (CurvePoint, error) {
	impls := e.Impls()
	pt := CurvePoint{Engine: e.Engine, Kind: kind, Goroutines: g, Rounds: cfg.Rounds, Ratio: math.NaN()}
	for _, im := range impls {
		pt.Impls = append(pt.Impls, im.Name)
	}
	pt.Stats = make([]LoadStats, len(impls))
	sampler := e.StartSampler(ctx)
	begin := time.Now()
	var ratios []float64
	for r := range cfg.Rounds + 1 { // round 0 warms up, untimed
		order := []int{0, 1}[:len(impls)]
		if r%2 == 1 {
			slices.Reverse(order)
		}
		d := cfg.PerRound
		if r == 0 {
			d = cfg.PerRound / 4
		}
		var roundRates [2]float64
		for _, k := range order {
			im := impls[k]
			plan := LoadPlan{Kind: kind, Goroutines: g, Duration: d}
			key := fmt.Sprintf("%s/%s/%s", e.Engine, im.Name, kind)
			if kind == LoadConsume {
				def := 3000.0
				if e.Engine == Memory {
					def = 100000
				}
				n := int(rates.get(key, def)*d.Seconds()*1.5) + 4*g
				codes, err := e.ReadyDeviceFlows(ctx, im, min(n, 400000))
				if err != nil {
					return pt, fmt.Errorf("%s on %s: fixture: %w", kind, e.Engine, err)
				}
				plan.Codes = codes
			}
			st, err := RunLoad(ctx, im, plan)
			if err != nil {
				return pt, fmt.Errorf("%s on %s, %s: %w", kind, e.Engine, im.Name, err)
			}
			rates.set(key, st.Rate())
			roundRates[k] = st.Rate()
			if r > 0 {
				pt.Stats[k].merge(st)
			}
		}
		if r > 0 && len(impls) == 2 && roundRates[1] > 0 {
			ratios = append(ratios, roundRates[0]/roundRates[1])
		}
	}
	for k := range pt.Stats {
		slices.Sort(pt.Stats[k].Lat)
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		pt.Ratio = ratios[len(ratios)/2]
		pt.RatioLo, pt.RatioHi = ratios[0], ratios[len(ratios)-1]
		for _, r := range ratios {
			if r > 1 {
				pt.Ahead++
			}
		}
	}
	pt.Duration = time.Since(begin)
	pt.Server, pt.Waits, pt.CPUBusy, pt.ProcCPU = sampler.Stop(ctx)
	return pt, nil
}
