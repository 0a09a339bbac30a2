package ehrsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const flagBody = `{"resourceType":"Flag","identifier":[{"system":"urn:test","value":"gap-1"}],` +
	`"status":"active","code":{"text":"care gap"},"subject":{"reference":"Patient/p1"}}`

// do sends one request and returns status, headers and body.
func do(t *testing.T, method, url, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestWriteCreateConditionalUpdate(t *testing.T) {
	s, ts := startSmall(t, Options{})
	cond := map[string]string{"If-None-Exist": "identifier=urn:test|gap-1"}

	st, h, body := do(t, "POST", ts.URL+"/fhir/Flag", flagBody, cond)
	if st != http.StatusCreated || h.Get("ETag") != `W/"1"` || !strings.Contains(h.Get("Location"), "/fhir/Flag/") {
		t.Fatalf("create = %d ETag %q Location %q, want 201 W/\"1\" and a Location", st, h.Get("ETag"), h.Get("Location"))
	}
	var created struct {
		ID   string `json:"id"`
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.ID == "" || created.Meta.VersionID != "1" {
		t.Fatalf("created body = %s (%v), want an id and versionId 1", body, err)
	}

	// The same conditional create again finds it: 200, no second Flag.
	st, _, body = do(t, "POST", ts.URL+"/fhir/Flag", flagBody, cond)
	if st != http.StatusOK || !strings.Contains(string(body), `"id":"`+created.ID+`"`) {
		t.Fatalf("repeated conditional create = %d %s, want 200 with %s", st, body, created.ID)
	}
	if n := s.Counts()["Flag"]; n != 1 {
		t.Fatalf("Flags = %d, want 1", n)
	}

	// Update with the right version moves it to 2; a stale one gets 412.
	upd := strings.Replace(flagBody, `"resourceType":"Flag",`, `"resourceType":"Flag","id":"`+created.ID+`",`, 1)
	upd = strings.Replace(upd, `"active"`, `"inactive"`, 1)
	st, h, _ = do(t, "PUT", ts.URL+"/fhir/Flag/"+created.ID, upd, map[string]string{"If-Match": `W/"1"`})
	if st != http.StatusOK || h.Get("ETag") != `W/"2"` {
		t.Fatalf("update = %d ETag %q, want 200 W/\"2\"", st, h.Get("ETag"))
	}
	st, _, _ = do(t, "PUT", ts.URL+"/fhir/Flag/"+created.ID, upd, map[string]string{"If-Match": `W/"1"`})
	if st != http.StatusPreconditionFailed {
		t.Fatalf("stale update = %d, want 412", st)
	}

	// Two matches make a conditional create ambiguous: 412.
	other := strings.Replace(flagBody, `"subject"`, `"note":[{"text":"x"}],"subject"`, 1)
	if st, _, _ := do(t, "POST", ts.URL+"/fhir/Flag", other, nil); st != http.StatusCreated {
		t.Fatalf("unconditional create = %d, want 201", st)
	}
	if st, _, _ := do(t, "POST", ts.URL+"/fhir/Flag", flagBody, cond); st != http.StatusPreconditionFailed {
		t.Fatalf("conditional create with two matches = %d, want 412", st)
	}

	writes := s.Writes()
	if len(writes) != 6 {
		t.Fatalf("Writes() has %d requests, want 6", len(writes))
	}
	if w := writes[0]; w.Method != "POST" || w.Type != "Flag" || w.Status != 201 || len(w.BodySHA256) != 64 {
		t.Errorf("Writes()[0] = %+v, want POST Flag 201 with a body hash", w)
	}
}

func TestWriteFaults(t *testing.T) {
	tests := []struct {
		fault      WriteFault
		wantStatus int // 0: no answer
		wantFlags  int
	}{
		{WriteFault500, 500, 0},
		{WriteFault429, 429, 0},
		{WriteFault422, 422, 0},
		{WriteFaultLostAnswer, 0, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			s, ts := startSmall(t, Options{})
			s.InjectWriteFault(tt.fault, 1)
			st, _, _ := do(t, "POST", ts.URL+"/fhir/Flag", flagBody, nil)
			if st != tt.wantStatus {
				t.Errorf("create with %s = %d, want %d", tt.fault, st, tt.wantStatus)
			}
			if n := s.Counts()["Flag"]; n != tt.wantFlags {
				t.Errorf("Flags after %s = %d, want %d", tt.fault, n, tt.wantFlags)
			}
			if w := s.Writes(); len(w) != 1 || w[0].Fault != tt.fault {
				t.Errorf("Writes() = %+v, want one request with fault %s", w, tt.fault)
			}
			// The fault fired once: the next create succeeds.
			if st, _, _ := do(t, "POST", ts.URL+"/fhir/Flag", flagBody, map[string]string{"If-None-Exist": "identifier=urn:test|gap-1"}); st != 201 && st != 200 {
				t.Errorf("create after the fault = %d, want 201 or 200", st)
			}
		})
	}
}

func TestWriteConcurrentEdit(t *testing.T) {
	s, ts := startSmall(t, Options{})
	_, h, body := do(t, "POST", ts.URL+"/fhir/Flag", flagBody, nil)
	var c struct{ ID string }
	_ = json.Unmarshal(body, &c)
	s.InjectWriteFault(WriteFaultConcurrentEdit, 1)
	upd := strings.Replace(flagBody, `"resourceType":"Flag",`, `"resourceType":"Flag","id":"`+c.ID+`",`, 1)
	st, _, _ := do(t, "PUT", ts.URL+"/fhir/Flag/"+c.ID, upd, map[string]string{"If-Match": h.Get("ETag")})
	if st != http.StatusPreconditionFailed {
		t.Fatalf("update after a concurrent edit = %d, want 412", st)
	}
	_, h, body = do(t, "GET", ts.URL+"/fhir/Flag/"+c.ID, "", nil)
	if h.Get("ETag") != `W/"2"` || !strings.Contains(string(body), "simulated clinician") {
		t.Fatalf("after the edit: ETag %q body %s, want version 2 with the clinician's note", h.Get("ETag"), body)
	}
}

func TestWriteRefusals(t *testing.T) {
	s, ts := startSmall(t, Options{WriteTypes: []string{"Flag"}})
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"type not writable", "POST", "/fhir/Observation", `{"resourceType":"Observation","status":"final","code":{}}`, 405},
		{"wrong resourceType", "POST", "/fhir/Flag", `{"resourceType":"Task"}`, 400},
		{"not JSON", "POST", "/fhir/Flag", `{`, 400},
		{"required missing", "POST", "/fhir/Flag", `{"resourceType":"Flag","status":"active"}`, 422},
		{"update unknown id", "PUT", "/fhir/Flag/nope", strings.Replace(flagBody, `"Flag",`, `"Flag","id":"nope",`, 1), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, _, _ := do(t, tt.method, ts.URL+tt.path, tt.body, nil); st != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, st, tt.want)
			}
		})
	}
	if n := len(s.Writes()); n != len(tests) {
		t.Errorf("Writes() has %d requests, want %d (refused ones are logged too)", n, len(tests))
	}
}
