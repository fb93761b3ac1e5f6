package sqlbackend

import (
	"strings"

	"entgo.io/ent/dialect"

	"github.com/authdb/authdb/internal/sqldialect"
)

// Column lists, in the order the scan functions read them.
const (
	deviceCols = `"UserCode","ClientID","Scope","DeviceCode","Status","CreationTime","IDToken"`
	authCols   = `"UUID","ClientID","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI","Code","Status","CreationTime","IDToken"`
	tokenCols  = `"JTI","Status","Scope","Sub","FamilyID","ReplacedBy"`
)

// queries holds every statement of the backend, written once per dialect
// when the backend opens (no SQL is built per call). Templates are written
// with "double-quoted" identifiers and ? placeholders and rewritten for each
// engine (`backquotes` on MySQL, $n on PostgreSQL).
//
// Liveness is "CreationTime" >= ?, the first whole second after
// now-maxValidity (see liveSince); clean-up is "CreationTime" < ? (and
// >= the batch's lower bound, see cleanup.go).
type queries struct {
	insertDevice        string // PG, SQLite: ON CONFLICT DO NOTHING; MySQL: plain (1062 = collision)
	validateUserCode    string
	deviceInsertIDToken string
	getDevice           string
	updateDeviceStatus  string
	consumeDevice       string // PG: one CTE; SQLite: UPDATE ... RETURNING; MySQL: conditional UPDATE

	insertAuth        string
	authInsertIDToken string // PG, SQLite: RETURNING "RedirectURI"
	authRedirectURI   string // MySQL: the read after authInsertIDToken
	getAuth           string
	updateAuthStatus  string
	consumeAuth       string

	insertToken    string
	getToken       string
	listTokens     string
	listAllTokens  string
	revokeToken    string
	revokeUser     string
	rotate         string // PG: one CTE; SQLite: UPDATE ... RETURNING in a transaction; MySQL: conditional UPDATE
	rotateInsert   string // SQLite, MySQL: the INSERT of the new token
	getTokenForRot string // the failure path's (and MySQL's first) read, with the successor's status
	familyOf       string // a token's family id
	revokeFamily   string // the CREATED tokens of a family
	cleanDevices   string // the clean-ups: (lower bound, bound, limit), see cleanup.go
	cleanAuths     string
	cleanTokens    string
	nthDevice      string // the clean-ups' keyset: the batch's last key (lower bound, bound, offset)
	nthAuth        string
	nthToken       string

	// The read-backs of writes whose reply was lost (outcome.go).
	deviceByUserCode string
	deviceStatus     string
	authByID         string
	authStatus       string
}

// fields returns a pointer to every statement: the one list of them, which
// buildQueries rewrites for the dialect and newStmtCache prepares.
func (q *queries) fields() []*string {
	return []*string{
		&q.insertDevice, &q.validateUserCode, &q.deviceInsertIDToken, &q.getDevice, &q.updateDeviceStatus, &q.consumeDevice,
		&q.insertAuth, &q.authInsertIDToken, &q.authRedirectURI, &q.getAuth, &q.updateAuthStatus, &q.consumeAuth,
		&q.insertToken, &q.getToken, &q.listTokens, &q.listAllTokens, &q.revokeToken, &q.revokeUser,
		&q.rotate, &q.rotateInsert, &q.getTokenForRot, &q.familyOf, &q.revokeFamily, &q.cleanDevices, &q.cleanAuths, &q.cleanTokens,
		&q.nthDevice, &q.nthAuth, &q.nthToken,
		&q.deviceByUserCode, &q.deviceStatus, &q.authByID, &q.authStatus,
	}
}

// buildQueries writes the statements of dialect d. familyLifetime adds the
// family-lifetime condition to the rotation's conditional update (one more
// argument: the lowest family id still live, backend.RotationBounds).
// subCharset is, on MySQL, the character set of RefreshTokens.Sub (see
// exactSub); elsewhere it is ignored.
//
// Refresh-token families (see backend/families.go): an inserted token is
// its own family's first (FamilyID = JTI); a rotation sets the old token's
// ReplacedBy to the new JTI and its FamilyID to COALESCE("FamilyID","JTI")
// (a DiracX-written row, FamilyID NULL, gets its own JTI), and gives the new
// token that family. A family is "FamilyID"=f OR "JTI"=f: the OR finds a
// DiracX-written first token, whose FamilyID may still be NULL.
func buildQueries(d string, mariaDB, familyLifetime bool, subCharset string) *queries {
	q := &queries{
		insertDevice:        `INSERT INTO "DeviceFlows" ("UserCode","Status","CreationTime","ClientID","Scope","DeviceCode") VALUES (?,'PENDING',?,?,?,?)`,
		validateUserCode:    `SELECT "Scope" FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='PENDING' AND "CreationTime">=?`,
		deviceInsertIDToken: `UPDATE "DeviceFlows" SET "IDToken"=?,"Status"='READY' WHERE "UserCode"=? AND "Status"='PENDING' AND "CreationTime">=?`,
		getDevice:           `SELECT ` + deviceCols + ` FROM "DeviceFlows" WHERE "DeviceCode"=?`,
		updateDeviceStatus:  `UPDATE "DeviceFlows" SET "Status"=? WHERE "DeviceCode"=?`,
		consumeDevice:       `UPDATE "DeviceFlows" SET "Status"='DONE' WHERE "DeviceCode"=? AND "Status"='READY' AND "CreationTime">=?`,

		insertAuth:        `INSERT INTO "AuthorizationFlows" ("UUID","Status","ClientID","CreationTime","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI") VALUES (?,'PENDING',?,?,?,?,?,?)`,
		authInsertIDToken: `UPDATE "AuthorizationFlows" SET "Code"=?,"IDToken"=?,"Status"='READY' WHERE "UUID"=? AND "Status"='PENDING' AND "CreationTime">=?`,
		authRedirectURI:   `SELECT "RedirectURI" FROM "AuthorizationFlows" WHERE "UUID"=?`,
		getAuth:           `SELECT ` + authCols + ` FROM "AuthorizationFlows" WHERE "Code"=? AND "CreationTime">=?`,
		updateAuthStatus:  `UPDATE "AuthorizationFlows" SET "Status"=? WHERE "Code"=?`,
		consumeAuth:       `UPDATE "AuthorizationFlows" SET "Status"='DONE' WHERE "Code"=? AND "Status"='READY' AND "CreationTime">=?`,

		insertToken:    `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") VALUES (?,'CREATED',?,?,?)`,
		getToken:       `SELECT ` + tokenCols + ` FROM "RefreshTokens" WHERE "JTI"=?`,
		listTokens:     `SELECT ` + tokenCols + ` FROM "RefreshTokens" WHERE "Status"='CREATED' AND "Sub"=? ORDER BY "JTI"`,
		listAllTokens:  `SELECT ` + tokenCols + ` FROM "RefreshTokens" ORDER BY "JTI"`,
		revokeToken:    `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "JTI"=?`,
		revokeUser:     `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "Status"='CREATED' AND "Sub"=?`,
		rotate:         `UPDATE "RefreshTokens" SET "Status"='REVOKED',"ReplacedBy"=?,"FamilyID"=COALESCE("FamilyID","JTI") WHERE "JTI"=? AND "Status"='CREATED'`,
		rotateInsert:   `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") VALUES (?,'CREATED',?,?,?)`,
		getTokenForRot: `SELECT t."Status",t."Scope",t."Sub",COALESCE(t."FamilyID",t."JTI"),t."FamilyID",t."ReplacedBy",s."Status" FROM "RefreshTokens" t LEFT JOIN "RefreshTokens" s ON s."JTI"=t."ReplacedBy" WHERE t."JTI"=?`,
		familyOf:       `SELECT COALESCE("FamilyID","JTI") FROM "RefreshTokens" WHERE "JTI"=?`,
		revokeFamily:   `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "Status"='CREATED' AND ("FamilyID"=? OR "JTI"=?)`,

		deviceByUserCode: `SELECT ` + deviceCols + ` FROM "DeviceFlows" WHERE "UserCode"=?`,
		deviceStatus:     `SELECT "Status" FROM "DeviceFlows" WHERE "DeviceCode"=?`,
		authByID:         `SELECT ` + authCols + ` FROM "AuthorizationFlows" WHERE "UUID"=?`,
		authStatus:       `SELECT "Status" FROM "AuthorizationFlows" WHERE "Code"=?`,
	}
	if familyLifetime {
		q.rotate += ` AND COALESCE("FamilyID","JTI")>=?`
	}
	switch d {
	case dialect.MySQL:
		// Subjects match exactly. A MySQL collation folds case (DiracX's
		// tables take the server's, often utf8mb4_general_ci) or pads
		// trailing spaces (utf8mb4_bin is PAD SPACE): the collated equality
		// uses the index, the binary one in the column's character set
		// decides (subArgs passes sub twice).
		exact := exactSub(subCharset)
		q.listTokens = strings.Replace(q.listTokens, ` ORDER BY`, exact+` ORDER BY`, 1)
		q.revokeUser += exact
		if mariaDB {
			// MariaDB 10.5+: the new token copies the old one's subject and
			// scope and returns them, one statement fewer than MySQL's read.
			q.rotateInsert = `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") SELECT ?,'CREATED',"Scope","Sub","FamilyID" FROM "RefreshTokens" WHERE "JTI"=? RETURNING "Scope","Sub","FamilyID"`
		}
		q.cleanDevices = `DELETE FROM "DeviceFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime","UserCode" LIMIT ?`
		q.cleanAuths = `DELETE FROM "AuthorizationFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime","UUID" LIMIT ?`
		q.cleanTokens = `DELETE FROM "RefreshTokens" WHERE "JTI">=? AND "JTI"<? ORDER BY "JTI" LIMIT ?`
	default:
		q.insertDevice += ` ON CONFLICT ("UserCode") DO NOTHING`
		q.cleanDevices = `DELETE FROM "DeviceFlows" WHERE "UserCode" IN (SELECT "UserCode" FROM "DeviceFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime" LIMIT ?)`
		q.cleanAuths = `DELETE FROM "AuthorizationFlows" WHERE "UUID" IN (SELECT "UUID" FROM "AuthorizationFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime" LIMIT ?)`
		q.cleanTokens = `DELETE FROM "RefreshTokens" WHERE "JTI" IN (SELECT "JTI" FROM "RefreshTokens" WHERE "JTI">=? AND "JTI"<? ORDER BY "JTI" LIMIT ?)`
	}
	q.nthDevice = `SELECT "CreationTime" FROM "DeviceFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime" LIMIT 1 OFFSET ?`
	q.nthAuth = `SELECT "CreationTime" FROM "AuthorizationFlows" WHERE "CreationTime">=? AND "CreationTime"<? ORDER BY "CreationTime" LIMIT 1 OFFSET ?`
	q.nthToken = `SELECT "JTI" FROM "RefreshTokens" WHERE "JTI">=? AND "JTI"<? ORDER BY "JTI" LIMIT 1 OFFSET ?`
	// A flow is consumed only when its stored ID token is a JSON object: a
	// row another program wrote with an array, a scalar or null there is
	// not marked DONE (and then reported unreadable) but left READY, and
	// the failure path says why (deviceFailure, authFailure). MySQL reads
	// the row before its update and checks it in Go.
	switch d {
	case dialect.SQLite:
		q.consumeDevice += ` AND json_type("IDToken")='object'`
		q.consumeAuth += ` AND json_type("IDToken")='object'`
	case dialect.Postgres:
		q.consumeDevice += ` AND json_typeof(CAST("IDToken" AS json))='object'`
		q.consumeAuth += ` AND json_typeof(CAST("IDToken" AS json))='object'`
	}
	switch d {
	case dialect.SQLite:
		q.consumeDevice += ` RETURNING ` + deviceCols
		q.consumeAuth += ` RETURNING ` + authCols
		q.authInsertIDToken += ` RETURNING "RedirectURI"`
		q.rotate += ` RETURNING "Scope","Sub","FamilyID"`
	case dialect.Postgres:
		// One statement on every path: the conditional UPDATE, and, when it
		// matched nothing, the row as it was (to say why) from the same
		// snapshot. A row that still reads READY and live was consumed by a
		// concurrent call that committed after the snapshot: the caller
		// runs the statement again.
		q.consumeDevice = `WITH u AS (` + q.consumeDevice + ` RETURNING ` + deviceCols + `) ` +
			`SELECT true,` + deviceCols + ` FROM u UNION ALL ` +
			`SELECT false,` + deviceCols + ` FROM "DeviceFlows" WHERE "DeviceCode"=? AND NOT EXISTS (SELECT 1 FROM u)`
		q.consumeAuth = `WITH u AS (` + q.consumeAuth + ` RETURNING ` + authCols + `) ` +
			`SELECT true,` + authCols + ` FROM u UNION ALL ` +
			`SELECT false,` + authCols + ` FROM "AuthorizationFlows" WHERE "Code"=? AND "CreationTime">=? AND NOT EXISTS (SELECT 1 FROM u)`
		q.authInsertIDToken += ` RETURNING "RedirectURI"`
		// The rotation in one statement: revoke the old token if it is
		// CREATED and insert the new one with its subject and scope. A new
		// JTI that exists fails the whole statement (23505): nothing written.
		// Arguments: new, old[, family bound], new.
		//
		// The status test is written "(...) IS TRUE", which no index can
		// serve, so that the old token is always found by the primary key:
		// on a table never analyzed (a new database, until autovacuum's
		// first ANALYZE), PostgreSQL costs both indexes at one row and may
		// pick index_status_sub, which reads every live token of every
		// subject at each rotation (measured: 10x slower at 64 callers once
		// the table held 100,000 tokens). TestRotationPlanBeforeAnalyze.
		q.rotate = strings.Replace(q.rotate, ` AND "Status"='CREATED'`, ` AND ("Status"='CREATED') IS TRUE`, 1)
		q.rotate = `WITH old AS (` + q.rotate + ` RETURNING "Scope","Sub","FamilyID"), ` +
			`ins AS (INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") SELECT CAST(? AS uuid),'CREATED',"Scope","Sub","FamilyID" FROM old) ` +
			`SELECT "Scope","Sub","FamilyID" FROM old`
	}
	for _, p := range q.fields() {
		*p = sqldialect.Rewrite(d, *p)
	}
	return q
}
