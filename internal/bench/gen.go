package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/internal/bench/baseline"
)

// Server-side generation of big tables: the rows are made by the server
// (PostgreSQL generate_series, MariaDB's SEQUENCE engine seq_<lo>_to_<hi>,
// SQLite a recursive common table expression)
// in chunks of GenChunk rows, one statement and transaction each, far
// faster than sending them. Rows are numbered; row i's values are a
// function of i, so that the benchmarks can compute the keys they read.

// GenChunk is the rows one generating statement inserts.
const GenChunk = 200_000

// TokenSet describes generated refresh tokens: token i has the JTI
// GenJTI(BaseMs+i*StepMs, i), status REVOKED when i%3 == 0 (else CREATED),
// and the subject SubPrefix+(i/10) (ten tokens a subject).
type TokenSet struct {
	BaseMs, StepMs int64
	SubPrefix      string
}

// GenJTI is the UUIDv7 with millisecond ms whose random bits are i: the
// hex digits ms(12) 7000 8 i(15).
func GenJTI(ms, i int64) uuid.UUID {
	var id uuid.UUID
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(id[0:6], b[2:8])
	id[6], id[7] = 0x70, 0x00
	binary.BigEndian.PutUint64(b[:], uint64(i))
	copy(id[8:16], b[:])
	id[8] = 0x80 | id[8]&0x0f
	return id
}

// JTI returns token i's JTI.
func (ts TokenSet) JTI(i int64) uuid.UUID { return GenJTI(ts.BaseMs+i*ts.StepMs, i) }

// GenTokens inserts tokens [from, to) of ts.
func (e *Env) GenTokens(ctx context.Context, ts TokenSet, from, to int64) error {
	for lo := from; lo < to; lo += GenChunk {
		hi := min(lo+GenChunk, to)
		var q string
		var args []any
		switch e.Dialect {
		case baseline.Postgres:
			q = `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub")
				SELECT CAST(lpad(to_hex($1::bigint + i*$2::bigint),12,'0') || '70008' || lpad(to_hex(i),15,'0') AS uuid),
					CASE WHEN i%3=0 THEN 'REVOKED' ELSE 'CREATED' END, $3, $4 || (i/10)
				FROM generate_series($5::bigint, $6::bigint) AS i`
			args = []any{ts.BaseMs, ts.StepMs, scope, ts.SubPrefix, lo, hi - 1}
		case baseline.MySQL:
			q = fmt.Sprintf("INSERT INTO `RefreshTokens` (`JTI`,`Status`,`Scope`,`Sub`)"+
				" SELECT CONCAT(LPAD(LOWER(HEX(?+seq*?)),12,'0'),'70008',LPAD(LOWER(HEX(seq)),15,'0')),"+
				" IF(seq%%3=0,'REVOKED','CREATED'), ?, CONCAT(?, seq DIV 10) FROM seq_%d_to_%d", lo, hi-1)
			args = []any{ts.BaseMs, ts.StepMs, scope, ts.SubPrefix}
		case baseline.SQLite:
			q = `WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i+1 FROM s WHERE i < ?)
				INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub")
				SELECT printf('%012x', ? + i*?) || '70008' || printf('%015x', i),
					CASE WHEN i%3=0 THEN 'REVOKED' ELSE 'CREATED' END, ?, ? || (i/10) FROM s`
			args = []any{lo, hi - 1, ts.BaseMs, ts.StepMs, scope, ts.SubPrefix}
		default:
			return fmt.Errorf("bench: GenTokens on %s: unsupported", e.Engine)
		}
		if _, err := e.Admin.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("bench: generate tokens %d-%d on %s: %w", lo, hi, e.Engine, err)
		}
	}
	return nil
}

// GenExpiredFlows inserts n PENDING device flows and n PENDING
// authorization flows created in the second-by-second day from created
// (user codes "Y"+7 digits, never a real code), numbered from first.
func (e *Env) GenExpiredFlows(ctx context.Context, created time.Time, first, n int64) error {
	created = created.UTC().Truncate(time.Second)
	for lo := first; lo < first+n; lo += GenChunk {
		hi := min(lo+GenChunk, first+n)
		var qs []string
		var args []any
		switch e.Dialect {
		case baseline.Postgres:
			qs = []string{
				`INSERT INTO "DeviceFlows" ("UserCode","Status","CreationTime","ClientID","Scope","DeviceCode")
				SELECT 'Y'||lpad(i::text,7,'0'), 'PENDING', $1::timestamptz + (i%86400) * interval '1 second', $2, $3, md5('d'||i)||md5('e'||i)
				FROM generate_series($4::bigint, $5::bigint) AS i`,
				`INSERT INTO "AuthorizationFlows" ("UUID","Status","ClientID","CreationTime","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI")
				SELECT CAST(md5('a'||i) AS uuid), 'PENDING', $2, $1::timestamptz + (i%86400) * interval '1 second', $3, 'c', 'S256', 'https://app.example.org/cb'
				FROM generate_series($4::bigint, $5::bigint) AS i`,
			}
			args = []any{created, clientID, scope, lo, hi - 1}
		case baseline.MySQL:
			seq := fmt.Sprintf("seq_%d_to_%d", lo, hi-1)
			qs = []string{
				"INSERT INTO `DeviceFlows` (`UserCode`,`Status`,`CreationTime`,`ClientID`,`Scope`,`DeviceCode`)" +
					" SELECT CONCAT('Y',LPAD(seq,7,'0')), 'PENDING', ? + INTERVAL (seq%86400) SECOND, ?, ?, CONCAT(MD5(CONCAT('d',seq)),MD5(CONCAT('e',seq))) FROM " + seq,
				"INSERT INTO `AuthorizationFlows` (`UUID`,`Status`,`ClientID`,`CreationTime`,`Scope`,`CodeChallenge`,`CodeChallengeMethod`,`RedirectURI`)" +
					" SELECT MD5(CONCAT('a',seq)), 'PENDING', ?, ? + INTERVAL (seq%86400) SECOND, ?, 'c', 'S256', 'https://app.example.org/cb' FROM " + seq,
			}
		case baseline.SQLite:
			seq := `WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i+1 FROM s WHERE i < ?) `
			qs = []string{
				seq + `INSERT INTO "DeviceFlows" ("UserCode","Status","CreationTime","ClientID","Scope","DeviceCode")
				SELECT 'Y'||printf('%07d', i), 'PENDING', datetime(?, '+'||(i%86400)||' seconds'), ?, ?, printf('%064x', i) FROM s`,
				seq + `INSERT INTO "AuthorizationFlows" ("UUID","Status","ClientID","CreationTime","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI")
				SELECT printf('%032x', i), 'PENDING', ?, datetime(?, '+'||(i%86400)||' seconds'), ?, 'c', 'S256', 'https://app.example.org/cb' FROM s`,
			}
		default:
			return fmt.Errorf("bench: GenExpiredFlows on %s: unsupported", e.Engine)
		}
		for k, q := range qs {
			a := args
			if e.Dialect == baseline.SQLite {
				at := created.Format("2006-01-02 15:04:05")
				if k == 0 {
					a = []any{lo, hi - 1, at, clientID, scope}
				} else {
					a = []any{lo, hi - 1, clientID, at, scope}
				}
			}
			if e.Dialect == baseline.MySQL {
				if k == 0 {
					a = []any{created, clientID, scope}
				} else {
					a = []any{clientID, created, scope}
				}
			}
			if _, err := e.Admin.ExecContext(ctx, q, a...); err != nil {
				return fmt.Errorf("bench: generate flows %d-%d on %s: %w", lo, hi, e.Engine, err)
			}
		}
	}
	return nil
}
