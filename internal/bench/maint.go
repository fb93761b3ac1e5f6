package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Maintenance runs: a foreground load of ForegroundRotators goroutines
// rotating and ForegroundConsumers consuming device flows on authdb warms
// up for MaintWarmup (its calls are not counted), runs for Quiet, then a job (a clean-up or partition maintenance, from its own
// backend, as an operator's janitor would) runs to its end while the load
// goes on, then the load runs Quiet more. The quiet latencies are those of
// the calls before the job started and after it ended; the busy ones
// those that started while it ran.

// Foreground goroutines of a maintenance run (16 in all).
const (
	ForegroundRotators  = 8
	ForegroundConsumers = 8
)

// MaintWarmup is the start of a maintenance run whose calls are not
// counted (the pools connect, the first fixtures are stored).
const MaintWarmup = time.Second

// consumeRefill is how many READY flows a consuming goroutine stores
// (untimed) when it has used its own up.
const consumeRefill = 200

// MaintJob is one maintenance job.
type MaintJob struct {
	Name, Setting string
	// Run does the job and returns the rows it deleted.
	Run func(ctx context.Context) (int64, error)
	// Slice, if set, runs the job in windows of Slice (see above).
	Slice time.Duration
	// Gate, if set, makes the windows without ending the call: the job's
	// clean-up progress callback calls Gate.Batch after each batch, which
	// sleeps Slice/2 once Slice of work has passed. (Ending the call each
	// window would make every window's first batch read again the index
	// entries the earlier windows deleted, until the server's vacuum or
	// purge removes them.)
	Gate *Gate
}

// Gate cuts a running clean-up into windows from its progress callback.
type Gate struct {
	mu     sync.Mutex
	slice  time.Duration
	origin time.Time
	from   time.Time
	busy   []Interval
	on     bool
}

// Batch is the clean-up's progress callback: after a batch, once the
// window has lasted its Slice, it records the window and sleeps Slice/2.
func (g *Gate) Batch(string, int64) {
	g.mu.Lock()
	if !g.on || time.Since(g.from) < g.slice {
		g.mu.Unlock()
		return
	}
	g.busy = append(g.busy, Interval{g.from.Sub(g.origin), time.Since(g.origin)})
	g.mu.Unlock()
	time.Sleep(g.slice / 2)
	g.mu.Lock()
	g.from = time.Now()
	g.mu.Unlock()
}

func (g *Gate) begin(origin time.Time, slice time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.origin, g.slice, g.from, g.on, g.busy = origin, slice, time.Now(), true, nil
}

func (g *Gate) end() []Interval {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = false
	return append(g.busy, Interval{g.from.Sub(g.origin), time.Since(g.origin)})
}

// Interval is a span of a run, since its start.
type Interval struct{ From, To time.Duration }

// MaintResult is one maintenance run.
type MaintResult struct {
	Engine, Job, Setting string
	Rows                 int64
	JobStart, JobTime    time.Duration // since the run's start; JobTime: the busy windows' sum
	Busy                 []Interval    // when the job ran
	Samples              []Sample
	Failed               int
	FirstErr             error
	Quiet, During        map[LoadKind][]time.Duration // sorted latencies
	Server               Counters
	Waits                []WaitShare
}

// P99Ratio returns the busy p99 over the quiet p99 of kind.
func (r MaintResult) P99Ratio(kind LoadKind) float64 {
	q := Pct(r.Quiet[kind], 0.99)
	if q == 0 {
		return 0
	}
	return float64(Pct(r.During[kind], 0.99)) / float64(q)
}

// RunMaintenance runs job under the foreground load on e's authdb.
func RunMaintenance(ctx context.Context, e *Env, job MaintJob, quiet time.Duration) (MaintResult, error) {
	im := e.Authdb
	res := MaintResult{Engine: e.Engine, Job: job.Name, Setting: job.Setting,
		Quiet: map[LoadKind][]time.Duration{}, During: map[LoadKind][]time.Duration{}}
	stop := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	record := func(local []Sample, failed int, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Samples = append(res.Samples, local...)
		res.Failed += failed
		if res.FirstErr == nil {
			res.FirstErr = err
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for range ForegroundRotators {
		wg.Go(func() {
			var local []Sample
			failed := 0
			var first error
			defer func() { record(local, failed, first) }()
			sub := newSubject()
			head := newJTI()
			if err := im.B.InsertRefreshToken(ctx, head, sub, scope); err != nil {
				failed, first = 1, err
				return
			}
			for !stopped() {
				nj := newJTI()
				t0 := time.Now()
				_, err := im.B.RotateRefreshToken(ctx, head, nj)
				local = append(local, Sample{At: t0.Sub(start), Took: time.Since(t0), Kind: LoadRotate})
				if err != nil {
					failed++
					if first == nil {
						first = err
					}
					nj = newJTI()
					if im.B.InsertRefreshToken(ctx, nj, sub, scope) != nil {
						return
					}
				}
				head = nj
			}
		})
	}
	for range ForegroundConsumers {
		wg.Go(func() {
			var local []Sample
			failed := 0
			var first error
			defer func() { record(local, failed, first) }()
			var codes []string
			for !stopped() {
				if len(codes) == 0 {
					var err error
					if codes, err = e.ReadyDeviceFlows(ctx, im, consumeRefill); err != nil {
						failed++
						if first == nil {
							first = err
						}
						return
					}
				}
				t0 := time.Now()
				_, err := im.B.ConsumeDeviceFlow(ctx, codes[0], Validity)
				local = append(local, Sample{At: t0.Sub(start), Took: time.Since(t0), Kind: LoadConsume})
				codes = codes[1:]
				if err != nil {
					failed++
					if first == nil {
						first = err
					}
				}
			}
		})
	}
	var jobErr error
	func() {
		defer func() {
			time.Sleep(quiet) // the load's quiet tail
			close(stop)
			wg.Wait()
		}()
		time.Sleep(MaintWarmup + quiet)
		sampler := e.StartSampler(ctx)
		res.JobStart = time.Since(start)
		if job.Gate != nil {
			job.Gate.begin(start, job.Slice)
			res.Rows, jobErr = job.Run(ctx)
			res.Busy = job.Gate.end()
			for _, iv := range res.Busy {
				res.JobTime += iv.To - iv.From
			}
			res.Server, res.Waits, _, _ = sampler.Stop(ctx)
			return
		}
		for {
			from := time.Since(start)
			jctx, cancel := ctx, context.CancelFunc(func() {})
			if job.Slice > 0 {
				jctx, cancel = context.WithTimeout(ctx, job.Slice)
			}
			n, err := job.Run(jctx)
			windowEnded := jctx.Err() != nil && ctx.Err() == nil
			cancel()
			to := time.Since(start)
			res.Busy = append(res.Busy, Interval{from, to})
			res.JobTime += to - from
			res.Rows += n
			if err == nil || !windowEnded {
				jobErr = err
				break
			}
			time.Sleep(job.Slice / 2)
		}
		res.Server, res.Waits, _, _ = sampler.Stop(ctx)
	}()
	if jobErr != nil {
		return res, fmt.Errorf("%s on %s (%s): %w", job.Name, e.Engine, job.Setting, jobErr)
	}
	slices.SortFunc(res.Samples, func(a, b Sample) int { return int(a.At - b.At) })
	res.Samples = slices.DeleteFunc(res.Samples, func(s Sample) bool { return s.At < MaintWarmup })
	for _, s := range res.Samples {
		if res.busyAt(s.At) {
			res.During[s.Kind] = append(res.During[s.Kind], s.Took)
		} else {
			res.Quiet[s.Kind] = append(res.Quiet[s.Kind], s.Took)
		}
	}
	for _, m := range []map[LoadKind][]time.Duration{res.Quiet, res.During} {
		for _, v := range m {
			slices.Sort(v)
		}
	}
	return res, nil
}

func (r MaintResult) busyAt(at time.Duration) bool {
	for _, iv := range r.Busy {
		if at >= iv.From && at < iv.To {
			return true
		}
	}
	return false
}

// Timeline returns, per window of w since the run's start, the p99 of the
// calls of kind that started in it.
func (r MaintResult) Timeline(kind LoadKind, w time.Duration) (at []time.Duration, p99 []time.Duration) {
	var bucket []time.Duration
	cur := time.Duration(0)
	flush := func() {
		if len(bucket) > 0 {
			slices.Sort(bucket)
			at = append(at, cur)
			p99 = append(p99, Pct(bucket, 0.99))
		}
		bucket = bucket[:0]
	}
	for _, s := range r.Samples {
		if s.Kind != kind {
			continue
		}
		for s.At >= cur+w {
			flush()
			cur += w
		}
		bucket = append(bucket, s.Took)
	}
	flush()
	return at, p99
}
