package backend

import (
	"log/slog"
	"strconv"
	"time"
)

// Option configures a backend. Options that make no sense for a backend are
// ignored by it, not errors (the memory backend ignores pool settings).
type Option func(*Options)

// Options is the resolved configuration a backend reads. Backends build it
// with NewOptions; users set it through the With* functions.
type Options struct {
	// Clock is "now" for liveness, expiry, creation times and clean-up.
	// Its result is converted to UTC and truncated to whole seconds.
	Clock func() time.Time
	// UserCodeGenerator makes candidate user codes (tests inject collisions).
	UserCodeGenerator func() (string, error)
	// Logger receives warnings and operational messages; never nil.
	Logger *slog.Logger
	// Migrate: SQL backends create or upgrade the schema on open.
	Migrate bool
	// Pool settings for SQL backends; zero means the driver's default.
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// CleanupBatchSize bounds the rows one clean-up statement deletes.
	CleanupBatchSize int
	// CleanupPause is how long a SQL clean-up waits between two batches
	// (WithCleanupPause); 0: no wait.
	CleanupPause time.Duration
	// PartitionPause is how long MySQL partition maintenance waits between
	// two of its statements (WithPartitionPause); 0: no wait.
	PartitionPause time.Duration
	// CleanupProgress, when set, is called after each clean-up batch with the
	// table name and the rows deleted so far by the current call.
	CleanupProgress func(table string, deletedSoFar int64)
	// ReuseScope is what a replayed refresh token revokes (WithReuseScope).
	ReuseScope ReuseScope
	// RotationGrace is the window in which a rotated token may be rotated
	// again and converge on its successor (WithRotationGrace); 0: none.
	RotationGrace time.Duration
	// FamilyLifetime bounds a family's age at rotation (WithFamilyLifetime); 0: none.
	FamilyLifetime time.Duration
	// ListPageSize is the number of tokens one page of a streamed listing
	// (RefreshTokenIterator) reads (WithListPageSize).
	ListPageSize int
	// ReconnectBudget is how long a SQL call waits, in all, for a new
	// connection the server refuses (WithReconnectBudget); 0: the backend's
	// default, negative: no waiting.
	ReconnectBudget time.Duration
}

// ReuseScope says what a replay of a revoked refresh token revokes.
type ReuseScope int

const (
	// RevokeSubject revokes every token of the token's subject (the default:
	// DiracX's behaviour).
	RevokeSubject ReuseScope = iota
	// RevokeFamily revokes only the replayed token's family, one login
	// session (RFC 9700 §4.14.2). Where the family cannot be followed (rows
	// without FamilyID that DiracX rotated), the subject is revoked.
	RevokeFamily
)

// String names the scope ("subject", "family").
func (s ReuseScope) String() string {
	switch s {
	case RevokeSubject:
		return "subject"
	case RevokeFamily:
		return "family"
	}
	return "ReuseScope(" + strconv.Itoa(int(s)) + ")"
}

// WithReuseScope sets what a replayed refresh token revokes: RevokeSubject
// (the default) or RevokeFamily. ErrTokenReused is returned either way.
func WithReuseScope(s ReuseScope) Option { return func(o *Options) { o.ReuseScope = s } }

// WithRotationGrace sets the grace window (default 0: none): rotating a
// token that was rotated less than d ago, whose successor is still CREATED,
// inserts nothing and succeeds, returning the old record with ReplacedBy set
// to that successor, which the caller hands out again. Concurrent refreshes
// of one token thus converge on one live token. A thief replaying within the
// window gets the successor too: keep it to a few seconds.
func WithRotationGrace(d time.Duration) Option { return func(o *Options) { o.RotationGrace = d } }

// WithFamilyLifetime bounds a login session (default 0: no bound): rotating
// a token whose family started more than d ago returns ErrExpired and
// writes nothing.
func WithFamilyLifetime(d time.Duration) Option { return func(o *Options) { o.FamilyLifetime = d } }

// DefaultCleanupBatchSize is the number of rows one clean-up statement
// deletes at most unless WithCleanupBatchSize says otherwise. With
// DefaultCleanupPause it keeps the foreground's p99 within 2x of a quiet
// database's while a clean-up of a million rows runs (docs/scale.md); a
// batch of 10,000 took SQLite's write lock, and the WAL flush on
// PostgreSQL, for long enough to double it.
const DefaultCleanupBatchSize = 2000

// DefaultCleanupPause is how long a SQL clean-up waits between two batches
// unless WithCleanupPause says otherwise (docs/scale.md, "Latency under
// maintenance", has the measurements behind it): 500 batches, a million
// rows, wait 10 s in all.
const DefaultCleanupPause = 20 * time.Millisecond

// DefaultPartitionPause is how long MySQL partition maintenance
// (MaintainRefreshTokenPartitions, 'authdb partitions') waits between two of
// its statements, one month added or dropped each, unless
// WithPartitionPause says otherwise. Each statement stalls the token
// traffic on RefreshTokens for as long as it holds the table's metadata
// lock; spread out this way, fewer than 1 % of the calls made while
// maintenance runs meet a stall, which keeps their p99 within 2x of a quiet
// server's (docs/scale.md). A month's usual work, one month added and one
// dropped, then takes one pause.
const DefaultPartitionPause = 5 * time.Second

// DefaultListPageSize is the number of tokens one page of a streamed listing
// reads unless WithListPageSize says otherwise.
const DefaultListPageSize = 1000

// NewOptions applies opts over the defaults: the system clock, GenerateUserCode,
// a logger that discards, migration on, DefaultCleanupBatchSize,
// DefaultCleanupPause, DefaultPartitionPause, DefaultListPageSize.
func NewOptions(opts ...Option) Options {
	o := Options{
		Clock:             time.Now,
		UserCodeGenerator: GenerateUserCode,
		Logger:            slog.New(slog.DiscardHandler),
		Migrate:           true,
		CleanupBatchSize:  DefaultCleanupBatchSize,
		CleanupPause:      DefaultCleanupPause,
		PartitionPause:    DefaultPartitionPause,
		ListPageSize:      DefaultListPageSize,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// Now returns the clock's time in UTC, truncated to whole seconds, the form
// every backend stores.
func (o Options) Now() time.Time { return o.Clock().UTC().Truncate(time.Second) }

// WithClock sets the backend's notion of "now" (tests inject a fake clock
// instead of sleeping). A nil clock is ignored.
func WithClock(clock func() time.Time) Option {
	return func(o *Options) {
		if clock != nil {
			o.Clock = clock
		}
	}
}

// WithUserCodeGenerator replaces the user-code generator (tests inject one
// that collides). A nil generator is ignored.
func WithUserCodeGenerator(gen func() (string, error)) Option {
	return func(o *Options) {
		if gen != nil {
			o.UserCodeGenerator = gen
		}
	}
}

// WithLogger sets the logger for warnings and operational messages. A nil
// logger is ignored.
func WithLogger(l *slog.Logger) Option {
	return func(o *Options) {
		if l != nil {
			o.Logger = l
		}
	}
}

// WithoutMigration opens a SQL backend without creating or upgrading the schema.
func WithoutMigration() Option { return func(o *Options) { o.Migrate = false } }

// WithMaxOpenConns sets the SQL pool's maximum number of open connections;
// 0 keeps the backend's default bound (the SQL backend's
// DefaultMaxOpenConns), a negative n leaves the pool unbounded.
func WithMaxOpenConns(n int) Option { return func(o *Options) { o.MaxOpenConns = n } }

// WithMaxIdleConns sets the SQL pool's maximum number of idle connections.
func WithMaxIdleConns(n int) Option { return func(o *Options) { o.MaxIdleConns = n } }

// WithConnMaxLifetime sets how long a pooled SQL connection may be reused.
func WithConnMaxLifetime(d time.Duration) Option {
	return func(o *Options) { o.ConnMaxLifetime = d }
}

// WithReconnectBudget sets how long a SQL call waits, in all, for a new
// connection when the server cannot be reached or refuses it (a failover
// in progress, a restart): such a call has sent nothing, so waiting for the
// new primary cannot do anything twice. The wait never outlasts the
// call's context. d < 0 turns the waiting off; 0 keeps the backend's
// default (sqlbackend.DefaultReconnectBudget). Ignored by the memory backend.
func WithReconnectBudget(d time.Duration) Option {
	return func(o *Options) { o.ReconnectBudget = d }
}

// WithCleanupBatchSize bounds the rows one clean-up statement deletes; n <= 0
// is ignored.
func WithCleanupBatchSize(n int) Option {
	return func(o *Options) {
		if n > 0 {
			o.CleanupBatchSize = n
		}
	}
}

// WithCleanupProgress registers a callback told, after each clean-up batch,
// the table and the rows deleted so far by the running clean-up call.
func WithCleanupProgress(fn func(table string, deletedSoFar int64)) Option {
	return func(o *Options) { o.CleanupProgress = fn }
}

// WithCleanupPause paces the SQL clean-ups (CleanExpiredDeviceFlows,
// CleanExpiredAuthorizationFlows, CleanExpiredRefreshTokens): after each
// batch of at most the clean-up batch size (WithCleanupBatchSize) rows
// that was full, so that more rows may remain, the call waits d before the
// next batch, leaving the database to the foreground's statements. No
// statement or transaction is open during the wait. A call deleting n rows
// thus takes about ceil(n/batch) statements plus (ceil(n/batch)-1)*d of
// waiting; a context that ends during a wait ends the call at once with
// the rows deleted so far and the context's error. d < 0 is ignored; 0
// means no wait. The memory backend, which deletes in one step, ignores it.
func WithCleanupPause(d time.Duration) Option {
	return func(o *Options) {
		if d >= 0 {
			o.CleanupPause = d
		}
	}
}

// WithPartitionPause paces MySQL partition maintenance: it waits d between
// two of its statements (each adds or drops one month), holding no lock and
// no connection; 0 runs them back to back; d < 0 is ignored. The default is
// DefaultPartitionPause. A context that ends during a pause ends
// the call with the months changed so far in its report and the context's
// error.
func WithPartitionPause(d time.Duration) Option {
	return func(o *Options) {
		if d >= 0 {
			o.PartitionPause = d
		}
	}
}

// WithListPageSize sets the number of tokens one page of a streamed listing
// (RefreshTokens) reads: memory held and rows per statement against the
// number of statements. n <= 0 is ignored.
func WithListPageSize(n int) Option {
	return func(o *Options) {
		if n > 0 {
			o.ListPageSize = n
		}
	}
}
