package backend

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Column limits of the DiracX schema, in characters (Unicode code points).
const (
	MaxClientIDLen            = 255
	MaxScopeLen               = 1024
	MaxSubLen                 = 256
	MaxCodeChallengeLen       = 255
	MaxCodeChallengeMethodLen = 8
	MaxRedirectURILen         = 255
)

// InvalidInput returns an error wrapping ErrInvalidInput that names the field.
func InvalidInput(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidInput, field, fmt.Sprintf(format, args...))
}

// CheckString checks that value is valid UTF-8 of at most max characters and,
// when required, not empty. The error names field and wraps ErrInvalidInput.
func CheckString(field, value string, max int, required bool) error {
	if required && value == "" {
		return InvalidInput(field, "must not be empty")
	}
	if !utf8.ValidString(value) {
		return InvalidInput(field, "is not valid UTF-8")
	}
	for i := 0; i < len(value); i++ {
		if value[i] == 0 {
			return InvalidInput(field, "contains a NUL character")
		}
	}
	if n := utf8.RuneCountInString(value); n > max {
		return InvalidInput(field, "is %d characters long, at most %d allowed", n, max)
	}
	return nil
}

// CheckDeviceFlow validates the arguments of InsertDeviceFlow.
func CheckDeviceFlow(clientID, scope string) error {
	if err := CheckString("client_id", clientID, MaxClientIDLen, true); err != nil {
		return err
	}
	return CheckString("scope", scope, MaxScopeLen, false)
}

// CheckAuthorizationFlow validates the arguments of InsertAuthorizationFlow.
func CheckAuthorizationFlow(clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) error {
	for _, c := range []struct {
		field, value string
		max          int
		required     bool
	}{
		{"client_id", clientID, MaxClientIDLen, true},
		{"scope", scope, MaxScopeLen, false},
		{"code_challenge", codeChallenge, MaxCodeChallengeLen, false},
		{"code_challenge_method", codeChallengeMethod, MaxCodeChallengeMethodLen, false},
		{"redirect_uri", redirectURI, MaxRedirectURILen, false},
	} {
		if err := CheckString(c.field, c.value, c.max, c.required); err != nil {
			return err
		}
	}
	return nil
}

// CheckRefreshToken validates the arguments of InsertRefreshToken.
func CheckRefreshToken(jti uuid.UUID, sub, scope string) error {
	if err := CheckJTI("jti", jti); err != nil {
		return err
	}
	if err := CheckString("sub", sub, MaxSubLen, true); err != nil {
		return err
	}
	return CheckString("scope", scope, MaxScopeLen, false)
}

// CheckJTI checks that id is a UUIDv7 (and so not the nil UUID).
func CheckJTI(field string, id uuid.UUID) error {
	if id == uuid.Nil {
		return InvalidInput(field, "is the nil UUID")
	}
	if !IsUUIDv7(id) {
		return InvalidInput(field, "%s is not a UUIDv7", id)
	}
	return nil
}

// CheckFlowStatus checks that s is one of the four flow statuses.
func CheckFlowStatus(s FlowStatus) error {
	if !s.Valid() {
		return InvalidInput("status", "%q is not one of PENDING, READY, DONE, ERROR", string(s))
	}
	return nil
}

// ID-token limits, the same on every backend: the floor of what every
// engine stores and authdb reads back.
const (
	// MaxIDTokenBytes is the largest ID token, as its JSON encoding
	// (encoding/json's, in bytes): 1 MiB. MySQL/MariaDB refuse a statement
	// larger than the server's max_allowed_packet (4 MiB and more by
	// default); a token of 1 MiB leaves room for the rest of the statement
	// under any usual setting.
	MaxIDTokenBytes = 1 << 20
	// MaxIDTokenDepth is the deepest ID token, in levels counted as
	// MySQL's and MariaDB's JSON_DEPTH counts them: the token object is
	// level 1, a value inside a level-n object or array is at level n+1,
	// scalars included; an empty object or array counts as if it held a
	// scalar. 32 is MariaDB's limit (its JSON columns refuse deeper
	// documents), so at most 31 objects and arrays nest in one another.
	MaxIDTokenDepth = 32
)

// EncodeIDToken encodes an ID token as the JSON object stored in the IDToken
// column. A nil map, one that does not encode as a JSON object (a value
// json cannot encode, such as a channel or NaN), or one over the limits
// (MaxIDTokenBytes, MaxIDTokenDepth) is ErrInvalidInput naming "id_token".
// Every backend calls it before it writes anything, so a stored token can
// always be read back and consumed.
func EncodeIDToken(idToken map[string]any) ([]byte, error) {
	if idToken == nil {
		return nil, InvalidInput("id_token", "must be a JSON object, got nil")
	}
	b, err := json.Marshal(idToken)
	if err != nil {
		return nil, fmt.Errorf("%w: id_token: does not encode as a JSON object: %v", ErrInvalidInput, err)
	}
	if len(b) > MaxIDTokenBytes {
		return nil, InvalidInput("id_token", "is %d bytes as JSON, at most %d allowed", len(b), MaxIDTokenBytes)
	}
	if d := jsonDepth(b); d > MaxIDTokenDepth {
		return nil, InvalidInput("id_token", "is nested %d levels deep, at most %d allowed", d, MaxIDTokenDepth)
	}
	return b, nil
}

// jsonDepth is the nesting depth of valid JSON b as MaxIDTokenDepth counts
// it: objects and arrays nested in one another, plus one for the values
// in the innermost (empty ones included).
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > deepest {
				deepest = depth
			}
		case '}', ']':
			depth--
		}
	}
	return deepest + 1
}

// DecodeIDToken decodes a stored IDToken column; empty or JSON null gives nil.
// Numbers decode as float64, as encoding/json does.
func DecodeIDToken(b []byte) (map[string]any, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("authdb: decode stored id token: %w", err)
	}
	return m, nil
}

// CheckRetention checks a clean-up's maxRetention: a negative one would
// delete rows from the future (everything created a moment ago), so it
// is ErrInvalidInput naming "max_retention". Zero deletes every row older
// than now.
func CheckRetention(maxRetention time.Duration) error {
	if maxRetention < 0 {
		return InvalidInput("max_retention", "%v is negative", maxRetention)
	}
	return nil
}

// PrepareAuthorizationIDToken does the part of AuthorizationFlowInsertIDToken
// every backend shares, before it touches the store: it encodes idToken
// (ErrInvalidInput naming "id_token"), parses the flow id (dashed or 32 hex
// digits, any case; anything else names no flow: ErrNotPending) and makes
// the fresh plain code. Callers wrap the error with their operation.
func PrepareAuthorizationIDToken(flowID string, idToken map[string]any) (id uuid.UUID, tokenJSON []byte, code string, err error) {
	if tokenJSON, err = EncodeIDToken(idToken); err != nil {
		return uuid.Nil, nil, "", err
	}
	if id, err = ParseStoredUUID(flowID); err != nil {
		return uuid.Nil, nil, "", fmt.Errorf("flow %q: %w", flowID, ErrNotPending)
	}
	if code, err = GenerateCode(); err != nil {
		return uuid.Nil, nil, "", err
	}
	return id, tokenJSON, code, nil
}
