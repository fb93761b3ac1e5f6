package sqlbackend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
)

// TestMultiHostURL: a port per host reaches lib/pq as its per-host lists,
// read-write is asked for by default, and the reconnect budget and
// wsrep_sync_wait parameters are parsed.
func TestMultiHostURL(t *testing.T) {
	for _, tc := range []struct {
		url        string
		hosts      []string
		ports      []uint16
		tsa        pq.TargetSessionAttrs
		reconnect  *time.Duration
		wantErrSub string
	}{
		{url: "postgres://u:" + secret + "@127.0.0.1:5442,127.0.0.1:5441/db?sslmode=disable",
			hosts: []string{"127.0.0.1", "127.0.0.1"}, ports: []uint16{5442, 5441}, tsa: pq.TargetSessionAttrsReadWrite},
		{url: "postgres://u@a.example,10.0.0.2:6000,b.example:7000/db?target_session_attrs=any&reconnect_budget=3s",
			hosts: []string{"a.example", "10.0.0.2", "b.example"}, ports: []uint16{5432, 6000, 7000}, tsa: pq.TargetSessionAttrsAny,
			reconnect: ptr(3 * time.Second)},
		{url: "postgres://u@h:5432/db?reconnect_budget=-1s", hosts: []string{"h"}, ports: []uint16{5432}, reconnect: ptr(-time.Second)},
		{url: "postgres://u@h1:1,,h2:2/db", wantErrSub: "empty host"},
		{url: "postgres://u@h1:1,h2:2/db?port=3", wantErrSub: "both in the URL"},
		{url: "postgres://u@h/db?host=x", wantErrSub: "unknown query parameter \"host\""},
		{url: "postgres://u@h/db?reconnect_budget=soon", wantErrSub: "reconnect_budget"},
	} {
		c, err := parseURL(tc.url)
		if tc.wantErrSub != "" {
			if err == nil || !errors.Is(err, backend.ErrInvalidInput) || !strings.Contains(err.Error(), tc.wantErrSub) {
				t.Errorf("%s: %v, want ErrInvalidInput with %q", tc.url, err, tc.wantErrSub)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if strings.Contains(c.where, secret) {
			t.Errorf("%s: where %q shows the password", tc.url, c.where)
		}
		pc, err := pq.NewConfig(c.dsn)
		if err != nil {
			t.Errorf("%s: lib/pq refuses %q: %v", tc.url, c.dsn, err)
			continue
		}
		hosts, ports := []string{pc.Host}, []uint16{pc.Port}
		for _, m := range pc.Multi {
			hosts, ports = append(hosts, m.Host), append(ports, m.Port)
		}
		if strings.Join(hosts, " ") != strings.Join(tc.hosts, " ") || len(ports) != len(tc.ports) {
			t.Errorf("%s: hosts %v ports %v, want %v %v", tc.url, hosts, ports, tc.hosts, tc.ports)
		} else {
			for i := range ports {
				if ports[i] != tc.ports[i] {
					t.Errorf("%s: ports %v, want %v", tc.url, ports, tc.ports)
					break
				}
			}
		}
		if pc.TargetSessionAttrs != tc.tsa {
			t.Errorf("%s: target_session_attrs %q, want %q", tc.url, pc.TargetSessionAttrs, tc.tsa)
		}
		if (c.reconnect == nil) != (tc.reconnect == nil) || c.reconnect != nil && *c.reconnect != *tc.reconnect {
			t.Errorf("%s: reconnect %v, want %v", tc.url, c.reconnect, tc.reconnect)
		}
	}
	for _, tc := range []struct {
		url  string
		want int
		ok   bool
	}{
		{"mysql://root@h:3306/test?wsrep_sync_wait=0", 0, true},
		{"mysql://root@h:3306/test?wsrep_sync_wait=15", 15, true},
		{"mysql://root@h:3306/test?wsrep_sync_wait=16", 0, false},
		{"mysql://root@h:3306/test?wsrep_sync_wait=x", 0, false},
	} {
		c, err := parseURL(tc.url)
		if (err == nil) != tc.ok || err == nil && (c.syncWait == nil || *c.syncWait != tc.want) {
			t.Errorf("%s: %v (syncWait %v), want ok=%v %d", tc.url, err, c, tc.ok, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
