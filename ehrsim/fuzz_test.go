package ehrsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzLoad checks that whatever Load accepts is served as valid JSON, both
// intact and malformed, and searchable without panics.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"effectivePeriod":{"start":"2024"}}`), "patient=p1&date=ge2023")
	f.Add([]byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"x"},"birthDate":"1970","name":[{"family":"A"}]}`), "name=a")
	f.Add([]byte(`{"resourceType":"Condition","id":"c","code":{"coding":[{}]},"meta":null}`), "code=|")
	f.Fuzz(func(t *testing.T, raw []byte, query string) {
		for _, malformed := range []bool{false, true} {
			s := New(Options{Malformed: func(string, string) bool { return malformed }})
			if err := s.Load(raw); err != nil {
				return
			}
			h, err := parseObject(raw)
			if err != nil {
				t.Fatalf("Load accepted what parseObject rejects: %v", err)
			}
			var typ, id string
			v, _ := h.get("resourceType")
			_ = json.Unmarshal(v, &typ)
			v, _ = h.get("id")
			_ = json.Unmarshal(v, &id)
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fhir/"+typ+"/"+url.PathEscape(id), nil))
			if w.Code != http.StatusOK || !json.Valid(w.Body.Bytes()) {
				t.Fatalf("read %s/%s: status %d, body %s", typ, id, w.Code, w.Body)
			}
			w = httptest.NewRecorder()
			s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fhir/"+typ+"?"+url.PathEscape(query), nil))
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("search %s?%s: invalid JSON %s", typ, query, w.Body)
			}
		}
	})
}
