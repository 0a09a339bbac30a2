package sqlstore

import (
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	tests := []struct {
		numbered bool
		in, want string
	}{
		{false, `SELECT a FROM t WHERE b=? AND c IN (?,?)`, `SELECT a FROM t WHERE b=? AND c IN (?,?)`},
		{true, `SELECT a FROM t WHERE b=? AND c IN (?,?)`, `SELECT a FROM t WHERE b=$1 AND c IN ($2,$3)`},
		{true, `SELECT 1`, `SELECT 1`},
	}
	for _, tc := range tests {
		d := &Dialect{Numbered: tc.numbered}
		for range 2 { // the second call comes from the cache
			if got := d.Bind(tc.in); got != tc.want {
				t.Errorf("Bind(%q) with Numbered=%v = %q, want %q", tc.in, tc.numbered, got, tc.want)
			}
		}
	}
}

func TestTimeDest(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	tests := []struct {
		src  any
		want time.Time
	}{
		{nil, time.Time{}},
		{"", time.Time{}},
		{at.Format(time.RFC3339Nano), at},
		{[]byte(at.Format(time.RFC3339Nano)), at},
		{at.In(time.FixedZone("x", 3600)), at},
	}
	for _, tc := range tests {
		got := time.Unix(1, 0)
		if err := TimeDest(&got).Scan(tc.src); err != nil {
			t.Errorf("Scan(%v): %v", tc.src, err)
			continue
		}
		if !got.Equal(tc.want) || got.Location() != time.UTC && !got.IsZero() {
			t.Errorf("Scan(%v) = %v, want %v in UTC", tc.src, got, tc.want)
		}
	}
	var got time.Time
	for _, bad := range []any{"yesterday", 42} {
		if err := TimeDest(&got).Scan(bad); err == nil {
			t.Errorf("Scan(%v) succeeded, want an error", bad)
		}
	}
}
