package backport

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNotificationRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	st := Status{Subscription: "Subscription/s1", Topic: "http://example.org/topic", Status: StatusActive, Type: TypeEvent,
		EventsSinceStart: 42, Events: []Event{{Number: 41, Timestamp: at, Focus: "Observation/o1"}, {Number: 42, Timestamp: at, Focus: "Encounter/e1"}}}
	entries := []Entry{{Ref: "Observation/o1", Resource: []byte(`{"resourceType":"Observation","id":"o1"}`)}, {Ref: "Encounter/e1"}}
	b, err := Bundle(st, "https://ehr.example.org/fhir", entries)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseNotification(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, n.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if len(n.Resources) != 2 || n.Resources[0].Ref != "Observation/o1" || n.Resources[1].Ref != "Encounter/e1" || n.Resources[1].Resource != nil {
		t.Errorf("resources = %+v", n.Resources)
	}
}

func TestParseNotificationRefuses(t *testing.T) {
	tests := []struct{ name, body string }{
		{"NotJSON", `{`},
		{"NotABundle", `{"resourceType":"Patient"}`},
		{"NoEntries", `{"resourceType":"Bundle","type":"history"}`},
		{"NoStatus", `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Patient","id":"p"}}]}`},
		{"StatusWithoutType", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"Subscription/1"}}]}}]}`},
		{"BadCount", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"Subscription/1"}},{"name":"type","valueCode":"heartbeat"},{"name":"events-since-subscription-start","valueString":"x"}]}}]}`},
		{"EventWithoutNumber", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"Subscription/1"}},{"name":"type","valueCode":"event-notification"},{"name":"notification-event","part":[]}]}}]}`},
		{"EntryWithoutResourceOrURL", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"Subscription/1"}},{"name":"type","valueCode":"event-notification"}]}},{"fullUrl":"urn:uuid:x"}]}`},
	}
	for _, tt := range tests {
		if _, err := ParseNotification([]byte(tt.body)); err == nil {
			t.Errorf("ParseNotification(%s) accepted it", tt.name)
		}
	}
}

func TestSubscriptionRoundTrip(t *testing.T) {
	want := SubscriptionRequest{Topic: "http://example.org/topic", Filter: "Patient?_id=1", Endpoint: "https://gw.example.org/n/t",
		Header: "Authorization: Bearer x", Payload: PayloadIDOnly, Heartbeat: 30 * time.Second, Reason: "r"}
	b, err := want.Resource()
	if err != nil {
		t.Fatal(err)
	}
	_, status, got, err := ParseSubscription(b)
	if err != nil || status != StatusRequested {
		t.Fatalf("ParseSubscription = %q, %v", status, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func FuzzParseNotification(f *testing.F) {
	b, _ := Bundle(Status{Subscription: "Subscription/s", Type: TypeHeartbeat, EventsSinceStart: 3}, "http://x/fhir", nil)
	f.Add(b)
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"fullUrl":"http://x/fhir/Observation/1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNotification(data)
		if err != nil {
			return
		}
		if n.Status.Subscription == "" || n.Status.Type == "" {
			t.Errorf("accepted a status without subscription or type: %+v", n.Status)
		}
		for _, r := range n.Resources {
			if r.Ref == "" {
				t.Error("accepted an entry naming no resource")
			}
		}
	})
}

func TestCriteriaRoundTrip(t *testing.T) {
	in := CriteriaRequest{Criteria: "Observation?patient=p1", Endpoint: "https://gw.example/n/abc", Header: "Authorization: Bearer s", Payload: PayloadMIME}
	raw, err := in.Resource()
	if err != nil {
		t.Fatal(err)
	}
	_, status, got, err := ParseCriteriaSubscription(raw)
	if err != nil || status != StatusRequested {
		t.Fatalf("ParseCriteriaSubscription = %q, %v", status, err)
	}
	in.Reason = "ehrgate"
	if got != in {
		t.Errorf("ParseCriteriaSubscription = %+v, want %+v", got, in)
	}
	for _, bad := range []string{"", "?patient=1", "NotAType?x=1", "Observation?%zz"} {
		if _, _, err := ParseCriteria(bad); err == nil {
			t.Errorf("ParseCriteria(%q) = nil error, want one", bad)
		}
	}
	if typ, q, err := ParseCriteria("Observation"); err != nil || typ != "Observation" || len(q) != 0 {
		t.Errorf("ParseCriteria(Observation) = %q, %v, %v", typ, q, err)
	}
	if !OffersSubscription([]byte(`{"rest":[{"resource":[{"type":"Subscription"}]}]}`)) || OffersSubscription([]byte(`{"rest":[{"resource":[{"type":"Patient"}]}]}`)) {
		t.Error("OffersSubscription is wrong")
	}
}
