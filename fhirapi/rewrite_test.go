package fhirapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ehrgate/store"
)

func TestServedChangesOnlyIDsReferencesAndMeta(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name, raw, want string
	}{
		{"no meta: inserted after resourceType",
			`{"resourceType":"Observation", "id" : "o1","subject":{"reference":"Patient/p1","display":"X"},"valueQuantity":{"value":1.50}}`,
			`{"resourceType":"Observation","meta":{"lastUpdated":"2026-03-04T05:06:07Z","source":"https://ehr.test/fhir","tag":[{"code":"epic_a","system":"urn:ehrgate:connection"}],"versionId":"v9"}, "id" : "epic-a.o1","subject":{"reference":"Patient/epic-a.p1","display":"X"},"valueQuantity":{"value":1.50}}`},
		{"meta kept and completed; history, absolute and foreign references",
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"x"}]},` +
				`"encounter":{"reference":"Encounter/e1/_history/2"},"performer":[{"reference":"https://ehr.test/fhir/Practitioner/d1"},{"reference":"https://other.test/Practitioner/d2"},{"reference":"#c1"},{"reference":"urn:uuid:1"}],` +
				`"contained":[{"resourceType":"Practitioner","id":"c1"}],"note":[{"text":"id reference"}]}`,
			`{"resourceType":"Observation","id":"epic-a.o1","meta":{"lastUpdated":"2020-01-01T00:00:00Z","source":"https://ehr.test/fhir","tag":[{"code":"x"},{"code":"epic_a","system":"urn:ehrgate:connection"}],"versionId":"v9"},` +
				`"encounter":{"reference":"Encounter/epic-a.e1/_history/2"},"performer":[{"reference":"Practitioner/epic-a.d1"},{"reference":"https://other.test/Practitioner/d2"},{"reference":"#c1"},{"reference":"urn:uuid:1"}],` +
				`"contained":[{"resourceType":"Practitioner","id":"c1"}],"note":[{"text":"id reference"}]}`},
		{"strings that look like keys are values",
			`{"resourceType":"Basic","id":"b","code":{"text":"reference"},"extension":[{"url":"u","valueString":"Patient/p1"}]}`,
			`{"resourceType":"Basic","meta":{"lastUpdated":"2026-03-04T05:06:07Z","source":"https://ehr.test/fhir","tag":[{"code":"epic_a","system":"urn:ehrgate:connection"}],"versionId":"v9"},"id":"epic-a.b","code":{"text":"reference"},"extension":[{"url":"u","valueString":"Patient/p1"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &store.Record{Key: store.Key{Connection: "epic_a", Type: "Observation", ID: "o1", VersionID: "v9"}, Raw: []byte(tc.raw), LastUpdated: t0}
			got, err := served(rec, "https://ehr.test/fhir")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("served(%s)\n got %s\nwant %s", tc.raw, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("served output is not JSON: %s", got)
			}
		})
	}
}

func FuzzServed(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p"}}`))
	f.Add([]byte(`{"id":"x","meta":{}}`))
	f.Add([]byte(`{"resourceType":"Patient","contained":[{"meta":{"tag":[]},"id":"y"}],"link":[{"other":{"reference":"Patient/q"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			return // the store holds JSON objects only
		}
		rec := &store.Record{Key: store.Key{Connection: "c_1", Type: "Observation", ID: "o", VersionID: "1"}, Raw: raw}
		out, err := served(rec, "https://ehr.test/fhir")
		if err != nil {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("served(%q) = %q: not JSON: %v", raw, out, err)
		}
		meta, _ := got["meta"].(map[string]any)
		if meta == nil || meta["versionId"] != "1" || !strings.Contains(string(out), ConnectionTagSystem) {
			t.Fatalf("served(%q) = %q: meta %v lacks the version or the connection tag", raw, out, meta)
		}
	})
}
