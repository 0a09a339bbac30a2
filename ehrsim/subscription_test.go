package ehrsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/fhir/backport"
)

// receiver collects the notifications posted to it.
type receiver struct {
	mu   sync.Mutex
	got  []backport.Notification
	auth []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n, err := backport.ParseNotification(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, n)
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	rc.mu.Unlock()
}

func (rc *receiver) events() map[int64]backport.Notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[int64]backport.Notification{}
	for _, n := range rc.got {
		for _, e := range n.Status.Events {
			out[e.Number] = n
		}
	}
	return out
}

// subscribeSim starts a simulator with two patients and subscriptions on,
// and subscribes rc with req (its endpoint filled in).
func subscribeSim(t *testing.T, o SubscriptionOptions, req backport.SubscriptionRequest) (*Server, string, *receiver, string) {
	t.Helper()
	o.Enabled = true
	s := New(Options{Subscriptions: o})
	for _, id := range []string{"a", "b"} {
		if err := s.Load(json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id))); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(s.CloseSubscriptions)
	rc := &receiver{}
	rs := httptest.NewServer(rc)
	t.Cleanup(rs.Close)
	req.Endpoint = rs.URL
	if req.Topic == "" {
		req.Topic = TopicChartChange
	}
	body, _ := req.Resource()
	resp, err := http.Post(ts.URL+"/fhir/Subscription", contentType, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", resp.StatusCode, b)
	}
	id, status, _, err := backport.ParseSubscription(b)
	if err != nil || status != backport.StatusActive {
		t.Fatalf("created %s status %q (%v), want active", id, status, err)
	}
	return s, ts.URL + "/fhir", rc, id
}

func waitEvents(t *testing.T, rc *receiver, n int) map[int64]backport.Notification {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := rc.events()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscriptionNotifications(t *testing.T) {
	tests := []struct {
		name, filter, payload string
		wantResource          bool
	}{
		{"FullResource", "", backport.PayloadFullResource, true},
		{"IDOnly", "", backport.PayloadIDOnly, false},
		{"Empty", "", backport.PayloadEmpty, false},
		{"PatientFilter", "Observation?patient=Patient/a", backport.PayloadFullResource, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base, rc, id := subscribeSim(t, SubscriptionOptions{}, backport.SubscriptionRequest{Filter: tt.filter, Payload: tt.payload,
				Header: "Authorization: Bearer s3cret"})
			if _, err := s.RunChanges(context.Background(), ChangeOptions{Changes: 30, Seed: 1, Base: base}); err != nil {
				t.Fatal(err)
			}
			var want int64 = 30
			if tt.filter != "" {
				want = s.subscription(id).count()
			}
			got := waitEvents(t, rc, int(want))
			if int64(len(got)) != want {
				t.Fatalf("%d events notified, want %d", len(got), want)
			}
			for num, n := range got {
				if n.Status.Type != backport.TypeEvent || n.Status.Subscription != "Subscription/"+id || n.Status.Topic != TopicChartChange {
					t.Errorf("event %d: status %+v", num, n.Status)
				}
				switch {
				case tt.payload == backport.PayloadEmpty && (len(n.Resources) != 0 || n.Status.Events[0].Focus != ""):
					t.Errorf("event %d: an empty payload carries %+v", num, n)
				case tt.payload != backport.PayloadEmpty && (len(n.Resources) != 1 || (len(n.Resources[0].Resource) > 0) != tt.wantResource):
					t.Errorf("event %d: %d entries, resource present %v, want %v", num, len(n.Resources), len(n.Resources) > 0 && len(n.Resources[0].Resource) > 0, tt.wantResource)
				}
				if tt.filter != "" && len(n.Resources[0].Resource) > 0 && !strings.Contains(string(n.Resources[0].Resource), `"Patient/a"`) {
					t.Errorf("event %d is about another patient than the filter's", num)
				}
			}
			for _, a := range rc.auth {
				if a != "Bearer s3cret" {
					t.Fatalf("Authorization = %q, want the channel header", a)
				}
			}
		})
	}
}

func (sub *simSub) count() int64 {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return int64(len(sub.events))
}

func TestSubscriptionStatusAndEvents(t *testing.T) {
	s, base, _, id := subscribeSim(t, SubscriptionOptions{}, backport.SubscriptionRequest{Payload: backport.PayloadFullResource})
	if _, err := s.RunChanges(context.Background(), ChangeOptions{Changes: 10, Seed: 2, Base: base}); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := get("/Subscription/" + id + "/$status")
	var bundle struct {
		Entry []struct{ Resource json.RawMessage } `json:"entry"`
	}
	if code != 200 || json.Unmarshal(b, &bundle) != nil || len(bundle.Entry) != 1 {
		t.Fatalf("$status = %d %s", code, b)
	}
	st, err := backport.ParseStatus(bundle.Entry[0].Resource)
	if err != nil || st.EventsSinceStart != 10 || st.Status != backport.StatusActive || st.Type != backport.TypeQueryStatus {
		t.Errorf("$status = %+v (%v), want 10 events, active", st, err)
	}
	tests := []struct {
		query      string
		code       int
		wantEvents []int64
	}{
		{"eventsSinceNumber=3&eventsUntilNumber=5", 200, []int64{3, 4, 5}},
		{"eventsSinceNumber=9", 200, []int64{9, 10}},
		{"eventsSinceNumber=11", 200, nil},
		{"eventsSinceNumber=0", 400, nil},
		{"eventsUntilNumber=x", 400, nil},
	}
	for _, tt := range tests {
		code, b := get("/Subscription/" + id + "/$events?" + tt.query)
		if code != tt.code {
			t.Errorf("$events?%s = %d, want %d", tt.query, code, tt.code)
			continue
		}
		if code != 200 {
			continue
		}
		n, err := backport.ParseNotification(b)
		if err != nil {
			t.Fatalf("$events?%s: %v", tt.query, err)
		}
		var nums []int64
		for _, e := range n.Status.Events {
			nums = append(nums, e.Number)
		}
		if fmt.Sprint(nums) != fmt.Sprint(tt.wantEvents) || len(n.Resources) != len(tt.wantEvents) || n.Status.Type != backport.TypeQueryEvent {
			t.Errorf("$events?%s = events %v with %d resources (%s), want %v", tt.query, nums, len(n.Resources), n.Status.Type, tt.wantEvents)
		}
	}
	if code, _ := get("/Subscription/nope/$status"); code != 404 {
		t.Errorf("$status of an unknown subscription = %d, want 404", code)
	}
	if code, _ := get("/Patient/a/$status"); code != 404 {
		t.Errorf("$status on a Patient = %d, want 404", code)
	}
}

func TestSubscriptionRefused(t *testing.T) {
	s := New(Options{Subscriptions: SubscriptionOptions{Enabled: true}})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ok := backport.SubscriptionRequest{Topic: TopicChartChange, Endpoint: "http://127.0.0.1:1/x", Payload: backport.PayloadIDOnly}
	tests := []struct {
		name   string
		change func(r *backport.SubscriptionRequest)
		want   int
	}{
		{"UnknownTopic", func(r *backport.SubscriptionRequest) { r.Topic = "http://example.org/other" }, 422},
		{"UnknownPayload", func(r *backport.SubscriptionRequest) { r.Payload = "everything" }, 422},
		{"RelativeEndpoint", func(r *backport.SubscriptionRequest) { r.Endpoint = "/x" }, 422},
		{"UnsupportedFilter", func(r *backport.SubscriptionRequest) { r.Filter = "Observation?code=1234-5" }, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.change(&r)
			body, _ := r.Resource()
			resp, err := http.Post(ts.URL+"/fhir/Subscription", contentType, strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("create = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	resp, err := http.Post(ts.URL+"/fhir/Subscription", contentType, strings.NewReader(`{"resourceType":"Patient"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("create from a Patient = %d, want 400", resp.StatusCode)
	}
	// The CapabilityStatement lists the topic and the operations.
	m, _ := http.Get(ts.URL + "/fhir/metadata")
	b, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if topics := backport.Topics(b); len(topics) != 1 || topics[0] != TopicChartChange {
		t.Errorf("topics = %v, want [%s]", topics, TopicChartChange)
	}
}
