package store

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in, scheme, loc string
		wantErr         bool
	}{
		{"sqlite:/var/lib/ehrgate", "sqlite", "/var/lib/ehrgate", false},
		{"sqlite:data", "sqlite", "data", false},
		{"sqlite:///abs/dir", "sqlite", "/abs/dir", false},
		{"./ehrgate-data", "sqlite", "./ehrgate-data", false},
		{"/var/lib/ehrgate", "sqlite", "/var/lib/ehrgate", false},
		{"postgres://u@h/db", "postgres", "postgres://u@h/db", false},
		{"postgresql://u@h/db", "postgres", "postgresql://u@h/db", false},
		{"mysql://u@h/db", "mysql", "mysql://u@h/db", false},
		{"", "", "", true},
		{"sqlite:", "", "", true},
	}
	for _, tc := range tests {
		scheme, loc, err := ParseURL(tc.in)
		if (err != nil) != tc.wantErr || scheme != tc.scheme || loc != tc.loc {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, error %v", tc.in, scheme, loc, err, tc.scheme, tc.loc, tc.wantErr)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://ehrgate:s3cret@db:5432/ehrgate?sslmode=require", "postgres://ehrgate:xxxxx@db:5432/ehrgate?sslmode=require"},
		{"postgres://ehrgate@db/ehrgate", "postgres://ehrgate@db/ehrgate"},
		{"sqlite:/var/lib/ehrgate", "sqlite:/var/lib/ehrgate"},
	}
	for _, tc := range tests {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	if _, err := Open(t.Context(), "mysql://u:pw@h/db", OpenOptions{}); err == nil {
		t.Fatal("Open(mysql://...) succeeded; want an error naming the missing backend")
	} else if s := err.Error(); strings.Contains(s, "pw") {
		t.Errorf("error %q shows the password", s)
	}
}
