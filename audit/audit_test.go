package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	t0  = time.Date(2026, 12, 7, 15, 4, 5, 123456789, time.UTC)
	src = Source{InstanceID: "gw-1", Site: "General Hospital"}
	app = Agent{UserID: "dr.who", Name: "Dr Who", ClientID: "chart-app", Address: "10.1.2.3"}
	pt  = PatientRef{Connection: "epic", ID: "p123"}
)

func goldenEvents() map[string]Event {
	read := Read(app, pt, ResourceRef{Connection: "epic", Type: "Observation", ID: "o1", Version: "2"})
	read.Outcome, read.Recorded, read.RequestID = OutcomeSuccess, t0, "req-42"
	read.Purpose = []Coding{Purpose("TREAT")}

	search := Search(Agent{ClientID: "backend-svc", Address: "gw.example.org"}, pt,
		"patient=p123&code=http%3A%2F%2Floinc.org%7C8867-4&access_token=SECRET&_count=10")
	search.Outcome, search.Recorded = OutcomeSuccess, t0

	refused := Read(Agent{ClientID: "nosy-app", Address: "192.0.2.7"}, pt)
	refused.Outcome, refused.OutcomeDesc, refused.Recorded = OutcomeMinor, "forbidden: the token lacks patient/Observation.rs", t0

	export := Export(Agent{UserID: "analyst"}, PatientRef{})
	export.Outcome, export.Recorded = OutcomeSuccess, t0
	return map[string]Event{"patient-read": read, "patient-query": search, "refused-read": refused, "export": export}
}

// TestAuditEventGolden: the AuditEvent JSON of each shape, as stored.
func TestAuditEventGolden(t *testing.T) {
	for name, ev := range goldenEvents() {
		t.Run(name, func(t *testing.T) {
			got, err := ev.AuditEvent(src)
			if err != nil {
				t.Fatalf("AuditEvent: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("AuditEvent(%s) = \n%s\nwant (testdata/%s.json)\n%s", name, pretty.Bytes(), name, want)
			}
			again, _ := ev.AuditEvent(src)
			if !bytes.Equal(got, again) {
				t.Errorf("AuditEvent is not deterministic:\n%s\n%s", got, again)
			}
		})
	}
}

// TestProfiles: each shape claims the BALP profile it follows.
func TestProfiles(t *testing.T) {
	ev := goldenEvents()
	noPatient := Read(app, PatientRef{}, ResourceRef{Type: "Organization", ID: "o"})
	create := Read(app, pt)
	create.Action = ActionCreate
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"read", ev["patient-read"], balp + "PatientRead"},
		{"query", ev["patient-query"], balp + "PatientQuery"},
		{"read without patient", noPatient, balp + "Read"},
		{"create", create, balp + "PatientCreate"},
		{"export", ev["export"], ""},
	} {
		if got := tc.ev.profile(); got != tc.want {
			t.Errorf("%s: profile() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestQueryIsBase64WithoutCredentials: the query entity is the raw query,
// base64-encoded, with OAuth parameters dropped.
func TestQueryIsBase64WithoutCredentials(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"name=smith", "name=smith"},
		{"code=1234-5&access_token=abc&_count=5", "code=1234-5&_count=5"},
		{"ACCESS_TOKEN=x&client_assertion=y&refresh_token=z&state=s&code_verifier=v", ""},
		{"access%5Ftoken=x&family=o%27brien", "family=o%27brien"},
	} {
		if got := cleanQuery(tc.in); got != tc.want {
			t.Errorf("cleanQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	b, err := goldenEvents()["patient-query"].AuditEvent(src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("SECRET")) {
		t.Fatalf("the AuditEvent holds the token: %s", b)
	}
	var ae auditEvent
	if err := json.Unmarshal(b, &ae); err != nil {
		t.Fatal(err)
	}
	var q string
	for _, e := range ae.Entity {
		if e.Role != nil && *e.Role == objectQuery {
			raw, err := base64.StdEncoding.DecodeString(e.Query)
			if err != nil {
				t.Fatal(err)
			}
			q = string(raw)
		}
	}
	if want := "patient=p123&code=http%3A%2F%2Floinc.org%7C8867-4&_count=10"; q != want {
		t.Errorf("query entity = %q, want %q", q, want)
	}
}

func TestValidate(t *testing.T) {
	ok := goldenEvents()["patient-read"]
	for _, tc := range []struct {
		name   string
		change func(*Event)
		want   string // in the error; "" for valid
	}{
		{"valid", func(*Event) {}, ""},
		{"no type", func(e *Event) { e.Type = Coding{} }, "no type"},
		{"bad action", func(e *Event) { e.Action = "X" }, "action"},
		{"bad outcome", func(e *Event) { e.Outcome = "" }, "outcome"},
		{"no agent", func(e *Event) { e.Agent = Agent{Address: "10.0.0.1"} }, "no agent"},
		{"client only", func(e *Event) { e.Agent = Agent{ClientID: "c"} }, ""},
		{"resource without id", func(e *Event) { e.Resources = []ResourceRef{{Type: "Observation"}} }, "lacks"},
		{"connection without patient", func(e *Event) { e.Patient = PatientRef{Connection: "epic"} }, "no id"},
	} {
		e := ok
		tc.change(&e)
		err := e.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Validate() = %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

// memTrail is an in-memory store.AuditLog that can be made to fail or slow.
type memTrail struct {
	mu      sync.Mutex
	entries []store.AuditEntry
	batches []int // sizes of the appends
	fail    error
	delay   time.Duration
}

func (m *memTrail) AppendAudit(_ context.Context, es ...store.AuditEntry) ([]store.AuditEntry, error) {
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.batches = append(m.batches, len(es))
	var out []store.AuditEntry
	for _, e := range es {
		e.Seq = int64(len(m.entries) + 1)
		m.entries = append(m.entries, e)
		out = append(out, e)
	}
	return out, nil
}

func (m *memTrail) QueryAudit(context.Context, store.AuditQuery) ([]store.AuditEntry, error) {
	return m.entries, nil
}

func (m *memTrail) VerifyAudit(context.Context) (store.AuditVerification, error) {
	return store.AuditVerification{}, nil
}

func TestLogRecords(t *testing.T) {
	trail := &memTrail{}
	l := NewLog(trail, src, func() time.Time { return t0 })
	ev := goldenEvents()["patient-read"]
	ev.Recorded = time.Time{}
	if err := l.Record(context.Background(), ev); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(trail.entries) != 1 {
		t.Fatalf("trail has %d entries, want 1", len(trail.entries))
	}
	got := trail.entries[0]
	want := store.AuditEntry{Seq: 1, Recorded: t0.Truncate(time.Microsecond), Type: "rest", Subtype: "read", Action: "R",
		Outcome: "0", Agent: "dr.who", Connection: "epic", Patient: "p123"}
	got.Event = nil
	if got.Seq != want.Seq || !got.Recorded.Equal(want.Recorded) || got.Type != want.Type || got.Subtype != want.Subtype ||
		got.Action != want.Action || got.Outcome != want.Outcome || got.Agent != want.Agent ||
		got.Connection != want.Connection || got.Patient != want.Patient {
		t.Errorf("stored entry = %+v, want %+v", got, want)
	}
	res, err := Resource(trail.entries[0])
	if err != nil {
		t.Fatal(err)
	}
	var ae auditEvent
	if err := json.Unmarshal(res, &ae); err != nil || ae.ID != "1" || ae.Recorded != "2026-12-07T15:04:05.123456Z" {
		t.Errorf("Resource = %s (%v); want id 1, recorded at microseconds", res, err)
	}
}

// TestLogFailsClosed: when the event cannot be stored, or is invalid,
// Record says so (and the caller refuses the access).
func TestLogFailsClosed(t *testing.T) {
	down := errors.New("database is down")
	trail := &memTrail{fail: down}
	l := NewLog(trail, src, nil)
	if err := l.Record(context.Background(), goldenEvents()["patient-read"]); !errors.Is(err, down) {
		t.Errorf("Record with the store down = %v, want the store's error", err)
	}
	trail.fail = nil
	bad := goldenEvents()["patient-read"]
	bad.Outcome = ""
	if err := l.Record(context.Background(), bad); !errors.Is(err, ErrInvalid) || len(trail.entries) != 0 {
		t.Errorf("Record(invalid) = %v with %d entries stored, want ErrInvalid and none", err, len(trail.entries))
	}
}

func TestResourceRefusesNonAuditEvent(t *testing.T) {
	for _, b := range []string{``, `{"resourceType":"Patient"}`, `{"resourceType":"AuditEvent"`} {
		if _, err := Resource(store.AuditEntry{Seq: 1, Event: []byte(b)}); err == nil {
			t.Errorf("Resource(%q) succeeded", b)
		}
	}
}

// TestLogSharesCommits: concurrent Records while the store is slow go in
// few appends, each Record returning once its event is stored; a failed
// append fails every Record in it.
func TestLogSharesCommits(t *testing.T) {
	trail := &memTrail{delay: 20 * time.Millisecond}
	l := NewLog(trail, src, nil)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := goldenEvents()["patient-read"]
			ev.RequestID = fmt.Sprint("req-", i)
			errs <- l.Record(context.Background(), ev)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if len(trail.entries) != n {
		t.Fatalf("trail has %d entries, want %d", len(trail.entries), n)
	}
	if len(trail.batches) >= n/2 {
		t.Errorf("%d events took %d appends (%v), want them shared", n, len(trail.batches), trail.batches)
	}
	seen := map[string]bool{}
	for _, e := range trail.entries {
		seen[string(e.Event)] = true
	}
	if len(seen) != n {
		t.Errorf("trail holds %d distinct events, want %d", len(seen), n)
	}

	trail.fail = errors.New("disk full")
	errs = make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.Record(context.Background(), goldenEvents()["patient-read"])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, trail.fail) {
			t.Errorf("Record with the store failing = %v, want its error", err)
		}
	}
}

// TestLogCancelledBeforeQueueing: a request already cancelled records
// nothing and says so.
func TestLogCancelledBeforeQueueing(t *testing.T) {
	trail := &memTrail{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewLog(trail, src, nil).Record(ctx, goldenEvents()["patient-read"]); !errors.Is(err, context.Canceled) || len(trail.entries) != 0 {
		t.Errorf("Record(cancelled) = %v with %d entries, want context.Canceled and none", err, len(trail.entries))
	}
}

// FuzzCleanQuery: whatever the query, no credential parameter survives and
// what is kept are whole parameters of the input, in order.
func FuzzCleanQuery(f *testing.F) {
	for _, s := range []string{"", "name=smith", "code=1234-5&access_token=abc&_count=5", "access%5Ftoken=x&family=o%27brien", "a&&b=&=c", "%zz=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := cleanQuery(raw)
		in := strings.Split(raw, "&")
		i := 0
		for _, part := range strings.Split(got, "&") {
			if got == "" {
				break
			}
			for i < len(in) && in[i] != part {
				i++
			}
			if i == len(in) {
				t.Fatalf("cleanQuery(%q) = %q: %q is not a parameter of the input in order", raw, got, part)
			}
			i++
			name, _, _ := strings.Cut(part, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			if secretParams[strings.ToLower(name)] {
				t.Fatalf("cleanQuery(%q) = %q keeps %q", raw, got, name)
			}
		}
	})
}
