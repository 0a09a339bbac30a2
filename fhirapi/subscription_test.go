package fhirapi_test

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

	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/events"
	"ehrgate/fhir/backport"
	"ehrgate/fhirapi"
	"ehrgate/refresh"
	"ehrgate/store"
)

// receiver is an app's real notification endpoint: it keeps what it is
// sent, can refuse (down) or lose (take, then forget) notifications.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []backport.Notification
	auth []string
	down bool
	lose int // event number to take and forget
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n, err := backport.ParseNotification(body)
		if err != nil {
			t.Errorf("receiver: %v: %s", err, body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if len(n.Status.Events) == 1 && n.Status.Events[0].Number == int64(rc.lose) {
			return // taken, then lost by the app
		}
		rc.got = append(rc.got, n)
		rc.auth = append(rc.auth, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) notifications() []backport.Notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]backport.Notification(nil), rc.got...)
}

// subEnv is the API with app Subscriptions over the store's event log,
// and the durable bus ingestion publishes on.
type subEnv struct {
	*env
	api *fhirapi.API
	bus *events.Bus
	// later is how far the deliverer's clock is past the API's.
	mu    sync.Mutex
	later time.Duration
	// revoked are the jtis (and clients) whose authorization is gone, as
	// the deliverer's Options.Authorized sees them.
	revoked map[string]bool
}

func (se *subEnv) advance(d time.Duration) {
	se.mu.Lock()
	se.later += d
	se.mu.Unlock()
}

func newSubEnv(t *testing.T) *subEnv {
	se := &subEnv{}
	se.env = newEnv(t, func(o *fhirapi.Options) { o.Events = o.Store.(store.EventLog); o.AllowPrivateEndpoints = true })
	// A second API on the same store delivers (as the gateway's leased
	// deliverer does); it is built from the same options.
	api, err := fhirapi.New(fhirapi.Options{Store: se.st, Auth: nil, Audit: se.audit, Docs: se.st, Events: se.st, BaseURL: audience,
		AllowPrivateEndpoints: true, // the test's receivers listen on loopback
		Connections:           map[string]string{"epic_a": "https://epic.test/api/FHIR/R4", "cerner": "https://cerner.test/r4"},
		Now: func() time.Time {
			se.mu.Lock()
			defer se.mu.Unlock()
			return se.gen.Now().Add(se.later)
		},
		Authorized: func(_ context.Context, client, tokenID string) (bool, error) {
			se.mu.Lock()
			defer se.mu.Unlock()
			return !se.revoked["client:"+client] && !se.revoked["jti:"+tokenID], nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	se.api = api
	se.bus = events.NewBus(events.BusOptions{Log: se.st})
	return se
}

// change stores a new Observation for the patient (source id) and
// publishes its event, as ingestion does.
func (se *subEnv) change(conn, patient, obsID string) {
	se.t.Helper()
	cat := "laboratory"
	if strings.HasPrefix(obsID, "vital") {
		cat = "vital-signs"
	}
	raw := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],`+
		`"code":{"text":"potassium"},"subject":{"reference":"Patient/%s"}}`, obsID, cat, patient)
	rec, err := refresh.NewRecord(conn, []byte(raw), time.Now(), "test")
	if err != nil {
		se.t.Fatal(err)
	}
	if _, err := se.st.PutResources(context.Background(), []store.Record{rec}); err != nil {
		se.t.Fatal(err)
	}
	se.bus.Publish(events.Event{Kind: events.ResultFinal, Connection: conn, PatientRef: "Patient/" + patient, Resources: []string{"Observation/" + obsID}})
}

func (se *subEnv) deliver() int {
	se.t.Helper()
	n, err := se.api.DeliverSubscriptions(context.Background())
	if err != nil {
		se.t.Fatal(err)
	}
	return n
}

func (se *subEnv) call(tok, method, path, body string) (int, map[string]any) {
	se.t.Helper()
	req, _ := http.NewRequest(method, se.srv.URL+"/fhir/"+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		se.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func subscription(t *testing.T, endpoint, filter, payload string) string {
	raw, err := backport.SubscriptionRequest{Topic: fhirapi.TopicPatientChart, Filter: filter, Endpoint: endpoint,
		Header: "Authorization: Bearer app-secret", Payload: payload}.Resource()
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestAppSubscriptionLifecycle(t *testing.T) {
	se := newSubEnv(t)
	rc := newReceiver(t)
	tok := se.token("patient/Subscription.crd patient/*.rs", "epic-a.p00000")

	code, sub := se.call(tok, "POST", "Subscription", subscription(t, rc.srv.URL, "", backport.PayloadFullResource))
	if code != http.StatusCreated || sub["status"] != "active" {
		t.Fatalf("create = %d %v, want 201 active", code, sub)
	}
	id := sub["id"].(string)
	if strings.Contains(fmt.Sprint(sub), "app-secret") {
		t.Error("the channel header (a secret) is echoed")
	}
	got := rc.notifications()
	if len(got) != 1 || got[0].Status.Type != backport.TypeHandshake || got[0].Status.Subscription != "Subscription/"+id || rc.auth[0] != "Bearer app-secret" {
		t.Fatalf("handshake: %+v %v", got, rc.auth)
	}

	// Changes for the token's patient are numbered and carry the resource;
	// another patient's change is not its event.
	se.change("epic_a", "p00000", "new-1")
	se.change("epic_a", "p00001", "other-1")
	se.change("epic_a", "p00000", "new-2")
	if n := se.deliver(); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	got = rc.notifications()[1:]
	for i, n := range got {
		if n.Status.Type != backport.TypeEvent || n.Status.EventsSinceStart != int64(i+1) || n.Status.Events[0].Number != int64(i+1) {
			t.Errorf("notification %d: %+v", i, n.Status)
		}
		if len(n.Resources) != 1 || n.Resources[0].Ref != fmt.Sprintf("Observation/epic-a.new-%d", i+1) || len(n.Resources[0].Resource) == 0 {
			t.Errorf("notification %d payload: %+v", i, n.Resources)
		}
		if strings.Contains(string(n.Resources[0].Resource), "p00001") {
			t.Error("another patient's data was sent")
		}
	}

	// The app is down: nothing is lost, it gets the events in order when
	// it is back.
	rc.mu.Lock()
	rc.down = true
	rc.mu.Unlock()
	se.change("epic_a", "p00000", "new-3")
	se.change("epic_a", "p00000", "new-4")
	if n := se.deliver(); n != 0 {
		t.Fatalf("delivered %d to an endpoint that is down", n)
	}
	hs, err := se.api.SubscriptionHealth(context.Background())
	if err != nil || len(hs) != 1 {
		t.Fatalf("SubscriptionHealth = %+v, %v", hs, err)
	}
	if h := hs[0]; h.ID != id || h.Client != "app-1" || h.Failures != 1 || h.Behind() < 2 || h.OldestUndelivered.IsZero() ||
		!strings.Contains(h.LastError, "503") || h.Numbered != 3 || h.Delivered != 2 {
		t.Errorf("SubscriptionHealth while the app is down = %+v (behind %d)", h, h.Behind())
	}
	rc.mu.Lock()
	rc.down, rc.lose = false, 4 // and it loses number 4 after taking it
	rc.mu.Unlock()
	se.change("epic_a", "p00000", "new-5")
	if n := se.deliver(); n != 3 {
		t.Fatalf("delivered %d after the app came back, want 3", n)
	}
	if hs, err := se.api.SubscriptionHealth(context.Background()); err != nil || hs[0].Behind() != 0 || hs[0].Failures != 0 || !hs[0].OldestUndelivered.IsZero() {
		t.Errorf("SubscriptionHealth after delivery = %+v, %v; want up to date", hs, err)
	}
	got = rc.notifications()
	var nums []int64
	for _, n := range got[1:] {
		nums = append(nums, n.Status.Events[0].Number)
	}
	if fmt.Sprint(nums) != "[1 2 3 5]" {
		t.Fatalf("numbers received %v, want [1 2 3 5] (4 lost by the app)", nums)
	}
	// The gap (5 after 3) is recovered with $events.
	code, b := se.call(tok, "GET", "Subscription/"+id+"/$events?eventsSinceNumber=4&eventsUntilNumber=4", "")
	raw, _ := json.Marshal(b)
	rec, err := backport.ParseNotification(raw)
	if code != 200 || err != nil || len(rec.Status.Events) != 1 || rec.Status.Events[0].Number != 4 ||
		len(rec.Resources) != 1 || rec.Resources[0].Ref != "Observation/epic-a.new-4" || rec.Status.Type != backport.TypeQueryEvent {
		t.Fatalf("$events = %d %v %+v", code, err, rec)
	}
	code, b = se.call(tok, "GET", "Subscription/"+id+"/$status", "")
	raw, _ = json.Marshal(b)
	if st, err := backport.ParseNotification(raw); code != 200 || err != nil || st.Status.EventsSinceStart != 5 || st.Status.Status != "active" {
		t.Fatalf("$status = %d %v %+v", code, err, st.Status)
	}
	if code, b := se.call(tok, "GET", "Subscription/"+id, ""); code != 200 || b["status"] != "active" {
		t.Fatalf("read = %d %v", code, b)
	}

	// Another client cannot see it; DELETE stops delivery.
	otherTok := se.token("user/Subscription.crd user/*.rs", "", func(c *jwt.Claims) { c.Subject = "user-2" })
	if code, _ := se.call(otherTok, "GET", "Subscription/"+id, ""); code != http.StatusNotFound {
		t.Errorf("another user's read = %d, want 404", code)
	}
	if code, _ := se.call(tok, "DELETE", "Subscription/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("delete = %d", code)
	}
	before := len(rc.notifications())
	se.change("epic_a", "p00000", "new-6")
	if n := se.deliver(); n != 0 || len(rc.notifications()) != before {
		t.Errorf("after DELETE: delivered %d", n)
	}
	if code, _ := se.call(tok, "GET", "Subscription/"+id, ""); code != http.StatusNotFound {
		t.Errorf("read after delete = %d, want 404", code)
	}
}

func TestAppSubscriptionRefusals(t *testing.T) {
	se := newSubEnv(t)
	rc := newReceiver(t)
	body := subscription(t, rc.srv.URL, "patient=Patient/epic-a.p00001", backport.PayloadIDOnly)
	cases := []struct {
		name, tok, body string
		want            int
	}{
		{"no token", "", body, http.StatusUnauthorized},
		{"no Subscription scope", se.token("patient/*.rs", "epic-a.p00000"), body, http.StatusForbidden},
		{"another patient", se.token("patient/Subscription.c patient/*.rs", "epic-a.p00000"), body, http.StatusForbidden},
		{"unknown topic", se.token("user/Subscription.c user/*.rs", ""), strings.Replace(body, fhirapi.TopicPatientChart, "https://x.test/topic", 1), http.StatusUnprocessableEntity},
		{"not a Subscription", se.token("user/Subscription.c user/*.rs", ""), `{"resourceType":"Patient"}`, http.StatusBadRequest},
		{"endpoint not http", se.token("user/Subscription.c user/*.rs", ""), strings.Replace(body, rc.srv.URL, "file:///etc/passwd", 1), http.StatusUnprocessableEntity},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, b := se.call(c.tok, "POST", "Subscription", c.body); code != c.want || b["resourceType"] != "OperationOutcome" {
				t.Errorf("= %d %v, want %d OperationOutcome", code, b, c.want)
			}
		})
	}
	if len(rc.notifications()) != 0 {
		t.Errorf("a refused subscription was sent %d notifications", len(rc.notifications()))
	}
}

// A user token limited to laboratory Observations gets only those,
// id-only; events of resources it may not see are not its events.
func TestAppSubscriptionScopesLimitThePayload(t *testing.T) {
	se := newSubEnv(t)
	rc := newReceiver(t)
	tok := se.token("user/Subscription.c user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "")
	code, sub := se.call(tok, "POST", "Subscription", subscription(t, rc.srv.URL, "patient=Patient/epic-a.p00001", backport.PayloadIDOnly))
	if code != http.StatusCreated {
		t.Fatalf("create = %d %v", code, sub)
	}
	se.change("epic_a", "p00001", "lab-1")
	se.change("epic_a", "p00000", "lab-2")   // not the filtered patient
	se.change("epic_a", "p00001", "vital-1") // not a laboratory result
	se.bus.Publish(events.Event{Kind: events.Admitted, Connection: "epic_a", PatientRef: "Patient/p00001", Resources: []string{"Patient/p00001"}})
	if n := se.deliver(); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	got := rc.notifications()
	n := got[len(got)-1]
	if len(n.Resources) != 1 || n.Resources[0].Ref != "Observation/epic-a.lab-1" || n.Resources[0].Resource != nil {
		t.Errorf("id-only notification: %+v", n.Resources)
	}
}

func TestAppSubscriptionHandshakeRetryAndHeartbeat(t *testing.T) {
	se := newSubEnv(t)
	rc := newReceiver(t)
	rc.down = true
	raw, _ := backport.SubscriptionRequest{Topic: fhirapi.TopicPatientChart, Endpoint: rc.srv.URL, Payload: backport.PayloadEmpty,
		Heartbeat: time.Minute}.Resource()
	tok := se.token("patient/Subscription.cr patient/Observation.rs", "epic-a.p00000")
	code, sub := se.call(tok, "POST", "Subscription", string(raw))
	if code != http.StatusCreated || sub["status"] != "error" {
		t.Fatalf("create with the endpoint down = %d %v, want 201 error", code, sub)
	}
	id := sub["id"].(string)
	se.change("epic_a", "p00000", "lab-1")
	se.deliver()
	if len(rc.notifications()) != 0 {
		t.Fatal("a subscription without a handshake was sent notifications")
	}
	rc.mu.Lock()
	rc.down = false
	rc.mu.Unlock()
	// The handshake is retried; then the event logged since the
	// subscription was created is delivered (payload empty).
	if n := se.deliver(); n != 1 {
		t.Fatalf("delivered %d after the handshake, want the event logged since creation", n)
	}
	got := rc.notifications()
	if len(got) != 2 || got[0].Status.Type != backport.TypeHandshake || got[1].Status.Type != backport.TypeEvent ||
		len(got[1].Resources) != 0 || got[1].Status.Events[0].Focus != "" {
		t.Fatalf("notifications %+v, want a handshake then an empty event-notification", got)
	}
	if code, b := se.call(tok, "GET", "Subscription/"+id, ""); code != 200 || b["status"] != "active" {
		t.Fatalf("read = %d %v, want active", code, b)
	}
	se.deliver()
	if len(rc.notifications()) != 2 {
		t.Fatal("a heartbeat before its period")
	}
	se.advance(2 * time.Minute)
	se.deliver()
	got = rc.notifications()
	if len(got) != 3 || got[2].Status.Type != backport.TypeHeartbeat || got[2].Status.EventsSinceStart != 1 {
		t.Fatalf("after the heartbeat period: %+v", got[len(got)-1].Status)
	}
}

func TestMetadataListsTheSubscriptionTopic(t *testing.T) {
	se := newSubEnv(t)
	resp, err := http.Get(se.srv.URL + "/fhir/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if got := backport.Topics(raw); len(got) != 1 || got[0] != fhirapi.TopicPatientChart {
		t.Errorf("topics %v", got)
	}
	if !backport.HasOperation(raw, "events") || !backport.HasOperation(raw, "status") {
		t.Error("$events and $status are not listed")
	}
}

// TestAppSubscriptionEnds: a subscription with Subscription.end gets its
// events until then, and after it nothing more: it is switched off.
func TestAppSubscriptionEnds(t *testing.T) {
	se := newSubEnv(t)
	rc := newReceiver(t)
	tok := se.token("patient/Subscription.crd patient/*.rs", "epic-a.p00000")
	raw, _ := backport.SubscriptionRequest{Topic: fhirapi.TopicPatientChart, Endpoint: rc.srv.URL, Payload: backport.PayloadIDOnly,
		End: se.gen.Now().Add(time.Hour)}.Resource()
	code, sub := se.call(tok, "POST", "Subscription", string(raw))
	if code != http.StatusCreated || sub["end"] == nil {
		t.Fatalf("create = %d %v, want 201 with its end", code, sub)
	}
	id := sub["id"].(string)
	se.change("epic_a", "p00000", "before-end")
	if n := se.deliver(); n != 1 {
		t.Fatalf("delivered %d before the end, want 1", n)
	}
	se.advance(2 * time.Hour)
	se.change("epic_a", "p00000", "after-end")
	if n := se.deliver(); n != 0 {
		t.Errorf("delivered %d after the end, want 0", n)
	}
	if code, b := se.call(tok, "GET", "Subscription/"+id, ""); code != 200 || b["status"] != "off" {
		t.Errorf("read after the end = %d %v, want status off", code, b)
	}
	// An end in the past is refused.
	raw, _ = backport.SubscriptionRequest{Topic: fhirapi.TopicPatientChart, Endpoint: rc.srv.URL, Payload: backport.PayloadIDOnly,
		End: se.gen.Now().Add(-time.Hour)}.Resource()
	if code, _ := se.call(tok, "POST", "Subscription", string(raw)); code != http.StatusUnprocessableEntity {
		t.Errorf("create with an end in the past = %d, want 422", code)
	}
}

// TestAppSubscriptionStopsWhenAuthorizationGoes: the token that created a
// subscription is revoked, or its client removed: delivery stops and the
// subscription is off.
func TestAppSubscriptionStopsWhenAuthorizationGoes(t *testing.T) {
	for _, what := range []string{"jti", "client"} {
		t.Run(what, func(t *testing.T) {
			se := newSubEnv(t)
			rc := newReceiver(t)
			tok := se.token("patient/Subscription.crd patient/*.rs", "epic-a.p00000", func(c *jwt.Claims) { c.ID = "tok-" + what })
			code, sub := se.call(tok, "POST", "Subscription", subscription(t, rc.srv.URL, "", backport.PayloadIDOnly))
			if code != http.StatusCreated {
				t.Fatalf("create = %d %v", code, sub)
			}
			id := sub["id"].(string)
			se.change("epic_a", "p00000", "one")
			if n := se.deliver(); n != 1 {
				t.Fatalf("delivered %d, want 1", n)
			}
			se.mu.Lock()
			se.revoked = map[string]bool{"jti:tok-jti": what == "jti", "client:app-1": what == "client"}
			se.mu.Unlock()
			se.change("epic_a", "p00000", "two")
			if n := se.deliver(); n != 0 {
				t.Errorf("delivered %d after the authorization went, want 0", n)
			}
			before := len(rc.notifications())
			se.mu.Lock()
			se.revoked = nil // switched off for good, even if the check says yes again
			se.mu.Unlock()
			se.change("epic_a", "p00000", "three")
			if n := se.deliver(); n != 0 || len(rc.notifications()) != before {
				t.Errorf("an off subscription was delivered %d", n)
			}
			d, err := se.st.GetDocument(context.Background(), "fhir-subscription", id)
			if err != nil || !strings.Contains(string(d.Body), `"status":"off"`) {
				t.Errorf("stored subscription = %s (%v), want status off", d.Body, err)
			}
		})
	}
}
