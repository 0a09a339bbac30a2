package bulk

import (
	"errors"
	"testing"
	"time"
)

func TestDecodeManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, m *Manifest)
	}{
		{name: "complete", in: `{"transactionTime":"2026-07-01T10:00:00.5+02:00","request":"https://x/fhir/$export","requiresAccessToken":true,
			"output":[{"type":"Patient","url":"https://x/f/1.ndjson","count":3},{"type":"Observation","url":"https://files.example/2"}],
			"error":[{"type":"OperationOutcome","url":"https://x/e/1"}],
			"deleted":[{"type":"Bundle","url":"https://x/d/1"}]}`,
			check: func(t *testing.T, m *Manifest) {
				if want := time.Date(2026, 7, 1, 8, 0, 0, 5e8, time.UTC); !m.TransactionTime.Equal(want) {
					t.Errorf("TransactionTime = %v, want %v", m.TransactionTime, want)
				}
				if !m.RequiresAccessToken || len(m.Output) != 2 || len(m.Error) != 1 || len(m.Deleted) != 1 {
					t.Errorf("manifest = %+v", m)
				}
				if m.Output[0].Count == nil || *m.Output[0].Count != 3 || m.Output[1].Count != nil {
					t.Errorf("counts = %v, %v; want 3 and absent", m.Output[0].Count, m.Output[1].Count)
				}
			}},
		{name: "empty output", in: `{"transactionTime":"2026-07-01T10:00:00Z","output":[]}`},
		{name: "no transactionTime", in: `{"output":[]}`, wantErr: true},
		{name: "bad transactionTime", in: `{"transactionTime":"yesterday"}`, wantErr: true},
		{name: "relative url", in: `{"transactionTime":"2026-07-01T10:00:00Z","output":[{"type":"Patient","url":"/f/1"}]}`, wantErr: true},
		{name: "no type", in: `{"transactionTime":"2026-07-01T10:00:00Z","output":[{"url":"https://x/f/1"}]}`, wantErr: true},
		{name: "negative count", in: `{"transactionTime":"2026-07-01T10:00:00Z","output":[{"type":"P","url":"https://x/1","count":-1}]}`, wantErr: true},
		{name: "not json", in: `<html>`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrBadManifest) {
					t.Fatalf("DecodeManifest = %v, want ErrBadManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeManifest: %v", err)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	c := int64(2)
	m := Manifest{TransactionTime: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Output: []OutputFile{{Type: "Patient", URL: "http://h/1", Count: &c}}}
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil || !got.TransactionTime.Equal(m.TransactionTime) || *got.Output[0].Count != 2 {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
}

func TestDecodeDeleted(t *testing.T) {
	tests := []struct {
		in      string
		want    []DeletedRef
		wantErr bool
	}{
		{in: `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}},{"request":{"method":"DELETE","url":"https://x/fhir/Observation/o-2"}}]}`,
			want: []DeletedRef{{"Patient", "p1"}, {"Observation", "o-2"}}},
		{in: `{"resourceType":"Bundle","entry":[]}`},
		{in: `{"resourceType":"Bundle","entry":[{"request":{"method":"PUT","url":"Patient/p1"}}]}`, wantErr: true},
		{in: `{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"p1"}}]}`, wantErr: true},
		{in: `{"resourceType":"Patient"}`, wantErr: true},
		{in: `nope`, wantErr: true},
	}
	for _, tc := range tests {
		got, err := DecodeDeleted([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("DecodeDeleted(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("DecodeDeleted(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("DecodeDeleted(%q)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"transactionTime":"2026-07-01T10:00:00Z","output":[{"type":"Patient","url":"https://x/f/1","count":1}]}`))
	f.Add([]byte(`{"transactionTime":"2026","deleted":[{"type":"Bundle","url":"http://h/d"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		for _, fl := range append(append(m.Output, m.Error...), m.Deleted...) {
			if fl.Type == "" || fl.URL == "" || (fl.Count != nil && *fl.Count < 0) {
				t.Fatalf("accepted bad file %+v", fl)
			}
		}
		if _, err := DecodeManifest(mustJSON(t, m)); err != nil {
			t.Fatalf("re-decoding an accepted manifest: %v", err)
		}
	})
}

func FuzzDecodeDeleted(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		refs, err := DecodeDeleted(b)
		if err != nil {
			return
		}
		for _, r := range refs {
			if r.Type == "" || r.ID == "" {
				t.Fatalf("accepted empty ref %+v", r)
			}
		}
	})
}

func mustJSON(t *testing.T, m *Manifest) []byte {
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
