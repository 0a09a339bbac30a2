package storetest

import (
	"context"
	"testing"
	"time"

	"ehrgate/store"
)

// PendingExportStore is the optional store role that keeps the Bulk Data
// export jobs kicked off and not finished (ingest.PendingExports, whose
// method set this repeats so that storetest does not import ingest).
type PendingExportStore interface {
	store.Store
	PendingExport(ctx context.Context, connection, scope string) (fingerprint, statusURL string, kickedOff time.Time, err error)
	SetPendingExport(ctx context.Context, connection, scope, fingerprint, statusURL string, kickedOff time.Time) error
	ClearPendingExport(ctx context.Context, connection, scope string) error
}

// RunPendingExportTests runs the conformance tests of pending export jobs
// against a fresh store made by newStore. Times are kept to the
// microsecond at least.
func RunPendingExportTests(t *testing.T, newStore func(t *testing.T) PendingExportStore) {
	ctx := context.Background()
	s := newStore(t)
	t.Cleanup(func() { s.Close() })
	at := time.Date(2026, 11, 23, 18, 0, 0, 123456000, time.FixedZone("x", 3600))
	type pending struct {
		fp, url string
		at      time.Time
	}
	steps := []struct {
		name  string
		do    func() error
		conn  string
		scope string
		want  pending // url "" = none
	}{
		{"none yet", func() error { return nil }, "a", "system", pending{}},
		{"set", func() error {
			return s.SetPendingExport(ctx, "a", "system", "fp1", "https://ehr/fhir/$bulk-status/1?sig=x", at)
		}, "a", "system", pending{"fp1", "https://ehr/fhir/$bulk-status/1?sig=x", at}},
		{"other scope untouched", func() error { return nil }, "a", "group/g", pending{}},
		{"other connection untouched", func() error { return nil }, "b", "system", pending{}},
		{"replace", func() error {
			return s.SetPendingExport(ctx, "a", "system", "fp2", "https://ehr/fhir/$bulk-status/2", at.Add(time.Hour))
		}, "a", "system", pending{"fp2", "https://ehr/fhir/$bulk-status/2", at.Add(time.Hour)}},
		{"second scope", func() error {
			return s.SetPendingExport(ctx, "a", "group/g", "fp3", "https://ehr/fhir/$bulk-status/3", at)
		}, "a", "group/g", pending{"fp3", "https://ehr/fhir/$bulk-status/3", at}},
		{"clear", func() error { return s.ClearPendingExport(ctx, "a", "system") }, "a", "system", pending{}},
		{"clear leaves the other scope", func() error { return nil }, "a", "group/g", pending{"fp3", "https://ehr/fhir/$bulk-status/3", at}},
		{"clear again is fine", func() error { return s.ClearPendingExport(ctx, "a", "system") }, "a", "system", pending{}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		fp, url, kicked, err := s.PendingExport(ctx, st.conn, st.scope)
		if err != nil {
			t.Fatalf("%s: PendingExport: %v", st.name, err)
		}
		if fp != st.want.fp || url != st.want.url || !kicked.Equal(st.want.at) {
			t.Errorf("%s: PendingExport(%s, %s) = %q %q %v, want %+v", st.name, st.conn, st.scope, fp, url, kicked, st.want)
		}
	}
	if err := s.SetPendingExport(ctx, "a", "system", "fp", "", at); err == nil {
		t.Error("SetPendingExport accepted an empty status URL")
	}
}
