package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/authdb/authdb/backend"
)

// Safe session settings on MySQL/MariaDB. A server's configuration must
// not change what authdb stores or matches, so every connection sets:
//
//   - SET NAMES utf8mb4 (COLLATE utf8mb4_general_ci): the client character
//     set whatever the server's default (a latin1 default, or
//     skip-character-set-client-handshake, would otherwise reinterpret the
//     UTF-8 authdb sends);
//   - sql_mode = mysqlSQLMode: strict for every table, so that a value a
//     column cannot hold is an error, never a silent '?' or truncation
//     (sql_mode='' stores user😀 as user? in a utf8mb3 column), and
//     nothing else (no ANSI_QUOTES, NO_BACKSLASH_ESCAPES or PIPES_AS_CONCAT
//     from the server's configuration).
//
// At open, authdb reads the character set of every text column of its
// three tables (information_schema.COLUMNS) and works exactly on utf8mb4,
// utf8mb3, latin1 and ascii: a value a column's character set cannot
// represent is ErrInvalidInput naming the field before anything is written,
// and a subject that no row can hold matches no row (on latin1, "user😀"
// would otherwise become "user?" and match that subject). Subjects compare
// byte for byte in the column's character set (the parameter converted to
// it). Any other character set refuses Open with the statement that
// converts the table.

// mysqlSQLMode is the sql_mode of every MySQL/MariaDB session: valid on
// MySQL 8 and MariaDB 10.5+.
const mysqlSQLMode = "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

// setSession makes every connection of m set the safe session settings.
func setSession(m *mysql.Config) error {
	if err := m.Apply(mysql.Charset("utf8mb4", "utf8mb4_general_ci")); err != nil {
		return err
	}
	if m.Params == nil {
		m.Params = map[string]string{}
	}
	m.Params["sql_mode"] = "'" + mysqlSQLMode + "'"
	return nil
}

// charsets are the character sets of the three tables' text columns:
// table -> column -> utf8mb4, utf8mb3, latin1 or ascii. A table or column
// missing from it (not created yet: authdb creates utf8mb4 ones) is utf8mb4.
type charsets map[string]map[string]string

// of returns the character set of table.column.
func (c charsets) of(table, column string) string {
	if cs := c[table][column]; cs != "" {
		return cs
	}
	return "utf8mb4"
}

// supportedCharset reports whether authdb works exactly on cs.
func supportedCharset(cs string) bool {
	switch cs {
	case "utf8mb4", "utf8mb3", "latin1", "ascii":
		return true
	}
	return false
}

// readCharsets reads the character sets of the three tables' text columns
// in the current database, and refuses one authdb cannot work exactly on.
func readCharsets(ctx context.Context, db *sql.DB, where string) (charsets, error) {
	rows, err := db.QueryContext(ctx,
		"SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "+
			"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('DeviceFlows','AuthorizationFlows','RefreshTokens') "+
			"AND CHARACTER_SET_NAME IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("authdb: open %s: read the tables' character sets: %w", where, err)
	}
	defer rows.Close()
	cs := charsets{}
	for rows.Next() {
		var table, column, set string
		if err := rows.Scan(&table, &column, &set); err != nil {
			return nil, fmt.Errorf("authdb: open %s: read the tables' character sets: %w", where, err)
		}
		set = strings.ToLower(set)
		if set == "utf8" {
			set = "utf8mb3"
		}
		if !supportedCharset(set) {
			return nil, fmt.Errorf("authdb: open %s: table %s has character set %s (column %s), which authdb cannot store every value in exactly; "+
				"convert it with: ALTER TABLE `%s` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
				where, table, set, column, table)
		}
		if cs[table] == nil {
			cs[table] = map[string]string{}
		}
		cs[table][column] = set
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("authdb: open %s: read the tables' character sets: %w", where, err)
	}
	return cs, nil
}

// representable reports whether character set cs holds every character of
// s (valid UTF-8) exactly.
func representable(cs, s string) bool {
	switch cs {
	case "utf8mb4":
		return true
	case "utf8mb3":
		for _, r := range s {
			if r > 0xFFFF {
				return false
			}
		}
		return true
	case "ascii":
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return false
			}
		}
		return true
	case "latin1":
		for _, r := range s {
			if !inLatin1(r) {
				return false
			}
		}
		return true
	}
	return false
}

// inLatin1 reports whether MySQL's latin1 (cp1252, with the five bytes
// cp1252 leaves undefined mapped to the C1 controls) holds r.
func inLatin1(r rune) bool {
	switch {
	case r < 0x80, r >= 0xA0 && r <= 0xFF:
		return true
	}
	switch r {
	case 0x81, 0x8D, 0x8F, 0x90, 0x9D,
		'€', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 'Ž',
		'‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', 'ž', 'Ÿ':
		return true
	}
	return false
}

// checkColumns checks that table's columns can hold the values exactly
// (MySQL only; elsewhere every column is Unicode): cols are triples of
// column, field name, value. A value a column cannot hold is
// ErrInvalidInput naming its field.
func (b *Backend) checkColumns(table string, cols ...string) error {
	if b.charsets == nil {
		return nil
	}
	for i := 0; i+2 < len(cols); i += 3 {
		column, field, value := cols[i], cols[i+1], cols[i+2]
		if cs := b.charsets.of(table, column); !representable(cs, value) {
			return backend.InvalidInput(field, "holds characters the %s column %s.%s cannot store (ALTER TABLE `%s` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)", cs, table, column, table)
		}
	}
	return nil
}

// storableSub reports whether any row can hold sub: a subject the Sub
// column cannot represent matches no row.
func (b *Backend) storableSub(sub string) bool {
	return b.charsets == nil || representable(b.charsets.of("RefreshTokens", "Sub"), sub)
}

// exactSub is the MySQL condition that makes a Sub comparison exact: the
// collated equality (which uses the index) is followed by a byte
// comparison in the column's character set (the parameter converted to
// it): no case folding, no PAD SPACE, latin1 bytes against latin1 bytes.
func exactSub(cs string) string {
	return ` AND CAST("Sub" AS BINARY)=CAST(CONVERT(? USING ` + cs + `) AS BINARY)`
}
