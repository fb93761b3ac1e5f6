package backend

import (
	"errors"
	"net/url"
	"strings"
)

// Server URLs and their secrets. People paste passwords into URLs as they
// are: "postgres://app:s3cret?pw#1@db:5432/auth". net/url ends the user
// information at the first '/', '?' or '#', so such a URL parses into a
// host of "app:s3cret", a query holding the rest of the password, and
// errors that quote it. ParseURL and Redact instead end the user
// information at the last '@' that is followed by a host: a password may
// hold any character, percent-encoded or not, while an '@' in a query
// value must be written %40.

// splitUserinfo splits rawURL into its scheme part ("postgres://", or ""
// for a string without a scheme such as a Go MySQL DSN), its user
// information and the rest (host, path, query), at the last '@' followed
// by a host. ok is false when there is no such '@'.
func splitUserinfo(rawURL string) (head, userinfo, rest string, ok bool) {
	if i := strings.Index(rawURL, "://"); i >= 0 {
		head = rawURL[:i+3]
	}
	s := rawURL[len(head):]
	for at := strings.LastIndexByte(s, '@'); at >= 0; at = strings.LastIndexByte(s[:at], '@') {
		if hostLike(s[at+1:]) {
			return head, s[:at], s[at+1:], true
		}
	}
	return head, "", s, false
}

// hostLike reports whether s starts with a host list (names, IPv4 or
// bracketed IPv6 addresses, ports, commas between hosts, or a Go MySQL
// DSN's tcp(host:port)) ending at '/', '?', '#' or the end of s.
func hostLike(s string) bool {
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(".-_~%:[],()", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParseURL parses a server URL (scheme://user:password@host:port/path?query)
// as net/url does, except that the user information runs to the last '@'
// followed by a host, so that user names and passwords may hold any
// character unencoded ('?', '#', '/', '@', ':' after the first); a
// percent-encoded one is decoded. Its errors never contain the user
// information.
func ParseURL(rawURL string) (*url.URL, error) {
	head, userinfo, rest, ok := splitUserinfo(rawURL)
	if !ok {
		if strings.Contains(rawURL[len(head):], "@") {
			return nil, errors.New("no host after the user information")
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, errors.New("cannot be parsed")
		}
		return u, nil
	}
	u, err := url.Parse(head + rest)
	if err != nil {
		return nil, errors.New("cannot be parsed after the user information (check the host, port and path)")
	}
	name, password, hasPassword := strings.Cut(userinfo, ":")
	name, password = unescapeOrLiteral(name), unescapeOrLiteral(password)
	if hasPassword {
		u.User = url.UserPassword(name, password)
	} else {
		u.User = url.User(name)
	}
	return u, nil
}

// unescapeOrLiteral percent-decodes s, or keeps it as written when it is
// not valid percent-encoding ("50%off").
func unescapeOrLiteral(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// secretParams are query parameters whose values Redact hides.
var secretParams = map[string]bool{"password": true, "passwd": true, "pass": true, "pwd": true, "sslpassword": true}

// Redact returns rawURL with any password replaced by "xxxxx", for errors
// and logs: the user information's password (see ParseURL: any characters,
// encoded or not) and the values of password query parameters (password,
// passwd, pass, pwd, sslpassword: to the next '&', '@' included). It works
// on URLs net/url cannot parse, and on strings without a scheme such as a
// Go MySQL DSN ("user:pass@tcp(host:3306)/db"). Where it cannot tell where
// a password ends, it hides more rather than less.
func Redact(rawURL string) string {
	head, userinfo, _, ok := splitUserinfo(rawURL)
	hide := make([]bool, len(rawURL))
	mark := func(from, to int) {
		for i := from; i < to; i++ {
			hide[i] = true
		}
	}
	s := rawURL[len(head):]
	switch {
	case ok:
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			mark(len(head)+c+1, len(head)+len(userinfo))
		}
		// A later '@' that no host follows ("u:@0#0@ "): the password may
		// run to it, '#' and '@' included. Hide from the first ':' to it.
		if last := strings.LastIndexByte(s, '@'); last > len(userinfo) {
			if c := strings.IndexByte(s[:last], ':'); c >= 0 {
				mark(len(head)+c+1, len(head)+last)
			}
		}
	case strings.Contains(s, "@"):
		// An '@' but no host after it: hide everything up to the last one.
		mark(len(head), len(head)+strings.LastIndexByte(s, '@'))
	}
	// Password parameters, wherever a '?' or '&' starts one.
	for i := len(head); i < len(rawURL); i++ {
		if rawURL[i] != '?' && rawURL[i] != '&' {
			continue
		}
		k, _, found := strings.Cut(rawURL[i+1:], "=")
		if !found || strings.ContainsAny(k, "&?") || !secretParams[strings.ToLower(unescapeOrLiteral(k))] {
			continue
		}
		from := i + 1 + len(k) + 1
		to := strings.IndexByte(rawURL[from:], '&')
		if to < 0 {
			to = len(rawURL)
		} else {
			to += from
		}
		mark(from, to)
	}
	var b strings.Builder
	for i := 0; i < len(rawURL); i++ {
		if !hide[i] {
			b.WriteByte(rawURL[i])
			continue
		}
		b.WriteString("xxxxx")
		for i+1 < len(rawURL) && hide[i+1] {
			i++
		}
	}
	return b.String()
}
