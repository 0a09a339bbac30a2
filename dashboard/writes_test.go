package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ehrgate/fhir"
	"ehrgate/login"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/writeback"
)

// versionsFunc is a writeback.Versions.
type versionsFunc func(ctx context.Context, connection, typ, id, versionID string) (store.Record, error)

func (f versionsFunc) GetVersion(ctx context.Context, connection, typ, id, versionID string) (store.Record, error) {
	return f(ctx, connection, typ, id, versionID)
}

// baseFlag is the version 3 of Flag f1 that the test's update was proposed
// against.
const baseFlag = `{"resourceType":"Flag","id":"f1","meta":{"versionId":"3","lastUpdated":"2026-11-01T00:00:00Z"},
 "identifier":[{"system":"urn:ehrgate:gap","value":"p1-af"}],"status":"active","category":[{"text":"clinical"}],
 "code":{"coding":[{"system":"urn:ehrgate:gap","code":"af-no-anticoag"}],"text":"AF without anticoagulant"},
 "subject":{"reference":"Patient/p1"},"period":{"start":"2026-01-01"}}`

const proposedFlag = `{"resourceType":"Flag","id":"f1","identifier":[{"system":"urn:ehrgate:gap","value":"p1-af"}],
 "status":"inactive","code":{"coding":[{"system":"urn:ehrgate:gap","code":"af-no-anticoag"}],"text":"AF without anticoagulant (closed)"},
 "subject":{"reference":"Patient/p1"},"period":{"start":"2026-01-01","end":"2026-12-07"}}`

type writesEnv struct {
	ob      *writeback.Outbox
	handler http.Handler
	id      string
}

// newWritesEnv is the approval pages over an outbox holding one proposed
// update; as, when set, is the signed-in person (with CSRF token "tok").
func newWritesEnv(t *testing.T, as *login.Person) writesEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, _ := secrets.GenerateKEK()
	clock := func() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }
	ob := writeback.NewOutbox(st, secrets.NewKeyring(kek), clock)
	rec, _, err := ob.Propose(ctx, writeback.Proposal{Connection: "epic", ResourceType: "Flag", Operation: writeback.OpUpdate,
		Resource: json.RawMessage(proposedFlag), Identifier: fhir.Identifier{System: "urn:ehrgate:gap", Value: "p1-af"},
		TargetID: "f1", BaseVersion: "3", Patient: "p1", Rule: writeback.Rule{Name: "care-gaps", Version: "1.2"}}, "rule:care-gaps", "proposed by care-gaps 1.2")
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, Options{Clock: clock, RequirePerson: as != nil})
	versions := versionsFunc(func(_ context.Context, conn, typ, id, v string) (store.Record, error) {
		if conn == "epic" && typ == "Flag" && id == "f1" && v == "3" {
			return store.Record{Raw: []byte(baseFlag)}, nil
		}
		return store.Record{}, store.ErrNotFound
	})
	h := d.Writes(WriteOptions{Queue: ob, Versions: versions, LocalApprover: "opuser"})
	if as != nil {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(w, r.WithContext(login.NewContext(r.Context(), *as, "tok")))
		})
	}
	return writesEnv{ob: ob, handler: h, id: rec.ID}
}

func (e writesEnv) do(t *testing.T, method, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rr := httptest.NewRecorder()
	e.handler.ServeHTTP(rr, req)
	return rr
}

var diffSection = regexp.MustCompile(`(?s)<section aria-labelledby="changes">.*?</section>`)

// TestWriteDiffGolden: an update is shown as a field-level diff against
// the version the rule read (testdata/writes_diff.golden.html; go test
// -run TestWriteDiffGolden -update).
func TestWriteDiffGolden(t *testing.T) {
	clin := login.Person{ID: "alice", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	e := newWritesEnv(t, &clin)
	rr := e.do(t, "GET", "/writes/"+e.id, nil, nil)
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /writes/{id} = %d:\n%s", rr.Code, rr.Body)
	}
	got := diffSection.FindString(rr.Body.String())
	if got == "" {
		t.Fatalf("no diff section on the page:\n%s", rr.Body)
	}
	golden := filepath.Join("testdata", "writes_diff.golden.html")
	if *update {
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got+"\n" != string(want) {
		t.Errorf("diff section changed (-update rewrites it):\ngot:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{`name="csrf" value="tok"`, `action="/writes/` + e.id + `/approve"`, "proposed by care-gaps 1.2"} {
		if !strings.Contains(rr.Body.String(), s) {
			t.Errorf("the page lacks %q", s)
		}
	}
}

// TestWriteDecisions: approving needs the session's CSRF token and a
// reason; the approver is the signed-in person; auditors may not see or
// decide; without login the approver is the local one, and cross-origin
// posts are refused.
func TestWriteDecisions(t *testing.T) {
	ctx := context.Background()
	clin := login.Person{ID: "alice", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	e := newWritesEnv(t, &clin)
	path := "/writes/" + e.id + "/approve"

	if rr := e.do(t, "POST", path, url.Values{"reason": {"checked"}}, nil); rr.Code != http.StatusForbidden {
		t.Errorf("POST approve without the CSRF token = %d, want 403", rr.Code)
	}
	if rr := e.do(t, "POST", path, url.Values{"reason": {"checked"}, "csrf": {"wrong"}}, nil); rr.Code != http.StatusForbidden {
		t.Errorf("POST approve with a wrong CSRF token = %d, want 403", rr.Code)
	}
	if rr := e.do(t, "POST", path, url.Values{"csrf": {"tok"}}, nil); rr.Code != http.StatusUnprocessableEntity {
		t.Errorf("POST approve without a reason = %d, want 422", rr.Code)
	}
	if rec, _ := e.ob.Get(ctx, e.id); rec.State != writeback.StateProposed {
		t.Fatalf("after refused posts the record is %s, want proposed", rec.State)
	}
	rr := e.do(t, "POST", path, url.Values{"reason": {"gap closed: anticoagulant started"}, "csrf": {"tok"}}, nil)
	if rr.Code != http.StatusSeeOther || rr.Header().Get("Location") != "/writes/"+e.id+"?done=approved" {
		t.Fatalf("POST approve = %d (Location %q), want 303 to the record", rr.Code, rr.Header().Get("Location"))
	}
	rec, _ := e.ob.Get(ctx, e.id)
	if last := rec.Last(); rec.State != writeback.StateApproved || rec.ApprovedBy != "alice" || last.By != "alice" || last.Why != "gap closed: anticoagulant started" {
		t.Errorf("record after approval = %s by %q (%+v), want approved by alice with the reason", rec.State, rec.ApprovedBy, last)
	}
	page := e.do(t, "GET", "/writes/"+e.id+"?done=approved", nil, nil).Body.String()
	if !strings.Contains(page, "gap closed: anticoagulant started") || strings.Contains(page, `id="approve"`) {
		t.Errorf("the approved record's page should show the reason in its history and no approve form")
	}
	if rr := e.do(t, "POST", path, url.Values{"reason": {"again"}, "csrf": {"tok"}}, nil); rr.Code != http.StatusConflict {
		t.Errorf("approving an approved record = %d, want 409", rr.Code)
	}

	aud := login.Person{ID: "audrey", Roles: []login.Role{login.RoleAuditor}, Method: "local"}
	ea := newWritesEnv(t, &aud)
	for _, r := range []struct{ method, path string }{{"GET", "/writes"}, {"GET", "/writes/" + ea.id}, {"POST", "/writes/" + ea.id + "/reject"}} {
		if rr := ea.do(t, r.method, r.path, url.Values{"reason": {"no"}, "csrf": {"tok"}}, nil); rr.Code != http.StatusForbidden {
			t.Errorf("auditor %s %s = %d, want 403", r.method, r.path, rr.Code)
		}
	}

	if rr := e.do(t, "POST", "/writes/nosuch/approve", url.Values{"reason": {"x"}, "csrf": {"tok"}}, nil); rr.Code != http.StatusNotFound {
		t.Errorf("POST approve of an unknown record = %d, want 404", rr.Code)
	}

	local := newWritesEnv(t, nil)
	rpath := "/writes/" + local.id + "/reject"
	if rr := local.do(t, "POST", rpath, url.Values{"reason": {"no"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); rr.Code != http.StatusForbidden {
		t.Errorf("cross-site POST reject without login = %d, want 403", rr.Code)
	}
	if rr := local.do(t, "POST", rpath, url.Values{"reason": {"not for this patient"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); rr.Code != http.StatusSeeOther {
		t.Fatalf("same-origin POST reject without login = %d, want 303", rr.Code)
	}
	rec, _ = local.ob.Get(ctx, local.id)
	if rec.State != writeback.StateRejected || rec.Last().By != "opuser" {
		t.Errorf("record after local rejection = %s by %q, want rejected by opuser", rec.State, rec.Last().By)
	}
	list := local.do(t, "GET", "/writes?state=rejected", nil, nil).Body.String()
	if !strings.Contains(list, local.id) {
		t.Errorf("GET /writes?state=rejected does not list the record")
	}
}
