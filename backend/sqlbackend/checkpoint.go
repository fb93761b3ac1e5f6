package sqlbackend

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A SQLite database in WAL mode copies the log back into the database
// file in checkpoints. By default the connection whose commit takes the log
// past 1000 pages runs one, inside that commit's call: while it copies,
// that caller waits, and with the write gate (writegate.go) so would every
// other writer of the process. A SQLite file opened by Open therefore turns
// the automatic checkpoints off on its pool's connections and runs them in
// a goroutine of its own, outside the gate: a PASSIVE checkpoint (it never
// waits for writers or readers, and they never wait for it) each time the
// log has grown by about checkpointFrames pages, as SQLite's own default
// does (the writes through the gate are counted, and the pages a write
// adds are learnt from each checkpoint's report), and at least every
// checkpointInterval while there were writes. Other processes writing the
// same file keep their own settings (SQLite's default: automatic).
const (
	checkpointFrames   = 1000
	restartFrames      = 8000 // log size (pages) that makes a checkpoint run its second pass
	firstEvery         = 256  // writes before the first checkpoint
	checkpointInterval = time.Second
	checkpointTimeout  = 30 * time.Second
)

// checkpointer runs the WAL checkpoints of one backend. A nil
// *checkpointer does nothing.
type checkpointer struct {
	db     *sql.DB
	gate   writeGate // the backend's: the second pass of a checkpoint runs inside it
	logger *slog.Logger
	writes atomic.Int64 // writes through the gate, ever
	due    atomic.Int64 // the value of writes that wakes the checkpointer
	kick   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func startCheckpointer(db *sql.DB, gate writeGate, logger *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, gate: gate, logger: logger, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	c.due.Store(firstEvery)
	go c.run()
	return c
}

// wrote counts one write attempt; once the checkpoint is due, each wakes
// the checkpointer (a send that never waits) until it has started.
func (c *checkpointer) wrote() {
	if c == nil {
		return
	}
	if c.writes.Add(1) >= c.due.Load() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	var last, lastFrames int64
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		case <-tick.C:
		}
		n := c.writes.Load()
		if n == last {
			continue
		}
		frames := c.checkpoint()
		// Pages per write, learnt from the log's growth since the last
		// checkpoint (the log starts afresh after a second pass).
		every := int64(firstEvery)
		if grown := frames - lastFrames; grown > 0 && n > last {
			every = min(max(16, checkpointFrames*(n-last)/grown), 1<<20)
		}
		lastFrames = frames
		if frames >= restartFrames {
			lastFrames = 0
		}
		last = n
		c.due.Store(n + every)
	}
}

// checkpoint runs a PASSIVE checkpoint outside the write gate, which
// copies most of the log while the writers go on, and, when the log holds
// restartFrames pages (32 MB) or more, a second one inside the gate, which
// copies what they appended meanwhile: SQLite starts the log afresh only at
// a write that begins after the log was copied completely, so that without
// the second pass it would grow without bound under sustained writes. The
// second pass syncs the log, so that the writers wait for the disk: it
// runs only once per restartFrames pages. It returns the log's size in
// pages as the first pass found it. A failure (the file busy with another
// process's checkpoint, say) is logged and left to the next one.
func (c *checkpointer) checkpoint() (frames int64) {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	frames, err := c.pass(ctx)
	if err == nil && frames >= restartFrames {
		var release func()
		if release, err = c.gate.enter(ctx); err == nil {
			_, err = c.pass(ctx)
			release()
		}
	}
	if err != nil {
		c.logger.Debug("authdb: SQLite checkpoint failed; the next one retries", "error", err)
		return 0
	}
	return frames
}

// pass runs PRAGMA wal_checkpoint(PASSIVE) once and returns the log's size
// in pages.
func (c *checkpointer) pass(ctx context.Context) (frames int64, err error) {
	var busy, done int64
	err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done)
	return frames, err
}

// stop ends the checkpointer and runs a last checkpoint. Idempotent.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		close(c.quit)
		<-c.done
		c.checkpoint()
	})
}
