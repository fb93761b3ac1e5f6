package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/authdb/authdb/internal/bench/baseline"
)

// Counters are a server's cumulative counters by name. On PostgreSQL:
// wal_bytes, the WAL written (pg_current_wal_lsn, exact and immediate;
// the pg_stat_* views lag: a backend flushes its statistics at most once a
// second, an idle one only after 10 s, too late for 1-second points). On
// MariaDB the server-wide SHOW GLOBAL STATUS (Innodb_data_fsyncs, which
// counts the redo log's fsyncs in 10.11, Innodb_log_writes,
// Innodb_row_lock_waits, Innodb_row_lock_time, Innodb_deadlocks,
// Com_commit). Both are server-wide: they include what other clients of
// the shared server did meanwhile.
type Counters map[string]float64

// Sub returns c - before, by name.
func (c Counters) Sub(before Counters) Counters {
	out := Counters{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

// ReadCounters reads the server's counters (nil for memory and SQLite).
func (e *Env) ReadCounters(ctx context.Context) (Counters, error) {
	if e.Dialect != baseline.Postgres && e.Dialect != baseline.MySQL {
		return nil, nil
	}
	c := Counters{}
	switch e.Dialect {
	case baseline.Postgres:
		var lsn float64
		if err := e.Admin.QueryRowContext(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&lsn); err != nil {
			return nil, err
		}
		c["wal_bytes"] = lsn
	case baseline.MySQL:
		rows, err := e.Admin.QueryContext(ctx, `SHOW GLOBAL STATUS WHERE Variable_name IN
			('Innodb_data_fsyncs','Innodb_log_writes','Innodb_row_lock_waits','Innodb_row_lock_time','Innodb_deadlocks','Com_commit')`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var name, v string
			if err := rows.Scan(&name, &v); err != nil {
				return nil, err
			}
			f, _ := strconv.ParseFloat(v, 64)
			c[name] = f
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WaitShare is a wait state's share of the sampled active sessions.
type WaitShare struct {
	Name  string
	Share float64
}

// Sampler samples the benchmark database's active sessions (PostgreSQL:
// pg_stat_activity's wait_event_type:wait_event, "CPU" when none; MariaDB:
// information_schema.PROCESSLIST's STATE) every 25 ms, and reads the
// counters and the CPU times at its start and stop.
type Sampler struct {
	e        *Env
	before   Counters
	cpu0     cpuTimes
	proc0    time.Duration
	start    time.Time
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	waits    map[string]int
	sessions int
}

// StartSampler starts sampling; Stop ends it.
func (e *Env) StartSampler(ctx context.Context) *Sampler {
	s := &Sampler{e: e, stop: make(chan struct{}), done: make(chan struct{}), waits: map[string]int{}, start: time.Now()}
	s.before, _ = e.ReadCounters(ctx)
	s.cpu0 = readCPU()
	s.proc0 = procCPU()
	var q string
	switch e.Dialect {
	case baseline.Postgres:
		q = `SELECT COALESCE(wait_event_type||':'||wait_event,'CPU'), COUNT(*) FROM pg_stat_activity
			WHERE datname=current_database() AND state='active' AND pid<>pg_backend_pid() GROUP BY 1`
	case baseline.MySQL:
		q = `SELECT COALESCE(NULLIF(STATE,''),COMMAND), COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB=DATABASE() AND COMMAND<>'Sleep' AND ID<>CONNECTION_ID() GROUP BY 1`
	}
	go func() {
		defer close(s.done)
		if q == "" {
			return
		}
		conn, err := e.Admin.Conn(ctx)
		if err != nil {
			return
		}
		defer conn.Close()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			s.sample(ctx, conn, q)
		}
	}()
	return s
}

func (s *Sampler) sample(ctx context.Context, conn *sql.Conn, q string) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return
	}
	defer rows.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for rows.Next() {
		var name string
		var n int
		if rows.Scan(&name, &n) == nil {
			s.waits[name] += n
			s.sessions += n
		}
	}
}

// Stop ends the sampling and returns the counters' deltas, the top wait
// states, the machine's CPU busy fraction and this process's CPU in cores.
func (s *Sampler) Stop(ctx context.Context) (Counters, []WaitShare, float64, float64) {
	close(s.stop)
	<-s.done
	after, _ := s.e.ReadCounters(ctx)
	var delta Counters
	if after != nil {
		delta = after.Sub(s.before)
	}
	cpu1 := readCPU()
	busy := 0.0
	if dt := cpu1.total - s.cpu0.total; dt > 0 {
		busy = float64(cpu1.busy-s.cpu0.busy) / float64(dt)
	}
	proc := (procCPU() - s.proc0).Seconds() / time.Since(s.start).Seconds()
	var waits []WaitShare
	for k, v := range s.waits {
		waits = append(waits, WaitShare{Name: k, Share: float64(v) / float64(s.sessions)})
	}
	slices.SortFunc(waits, func(a, b WaitShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return delta, waits, busy, proc
}

type cpuTimes struct{ busy, total int64 }

// readCPU reads the machine's CPU jiffies from /proc/stat (zero elsewhere).
func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// procCPU is this process's user+system CPU time.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FormatWaits prints the top n wait states as "name 45%, ...".
func FormatWaits(ws []WaitShare, n int) string {
	var parts []string
	for i, w := range ws {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", w.Name, 100*w.Share))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
