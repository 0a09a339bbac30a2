package dashboard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/dashboard"
	"ehrgate/hl7"
	"ehrgate/hl7/hl7store"
	"ehrgate/hl7/tofhir"
	"ehrgate/login"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

var feedNow = time.Date(2026, 3, 9, 10, 40, 0, 0, time.UTC)

// noAuthority is an ADT^A01 whose PID-3 has no assigning authority: the
// strict feed refuses it until a default authority is configured.
const noAuthority = "MSH|^~\\&|ADT|NORTH|||20260309||ADT^A01|REF-1|P|2.5.1\r" +
	"EVN|A01\rPID|1||ZZSECRET4711||Quuxley^Zebulon||19800101|F\rPV1|1|I\r"

// feedStore logs fixture messages of several triggers on feed "north"
// over the last hours, a refused one (AE), and an unsupported one (AR).
// It returns the store and the PID contents the page must never show.
func feedStore(t *testing.T) (*sqlite.Store, []string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	at := feedNow.Add(-5 * time.Hour)
	h := hl7store.New(s, hl7store.Options{Connection: "north", Clock: func() time.Time { return at },
		Convert: tofhir.Options{RequireAuthority: true}})
	var secrets []string
	send := func(raw []byte) error {
		m, err := hl7.Parse(raw, hl7.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pid, ok := m.Segment("PID", 1); ok {
			for _, f := range []int{3, 5, 7, 11, 13} {
				for _, part := range strings.FieldsFunc(string(pid.Field(f).Raw()), func(r rune) bool { return strings.ContainsRune("^~&", r) }) {
					if len(part) > 3 {
						secrets = append(secrets, part)
					}
				}
			}
		}
		at = at.Add(17 * time.Minute)
		return h.HandleMessage(ctx, m)
	}
	for _, name := range []string{"adt-a01", "adt-a08", "oru-r01", "adt-a03", "oru-r01-prelim", "vxu-v04"} {
		raw, err := os.ReadFile(filepath.Join("..", "hl7", "tofhir", "testdata", "messages", name+".hl7"))
		if err != nil {
			t.Fatal(err)
		}
		if err := send(raw); err != nil {
			t.Fatalf("HandleMessage(%s): %v", name, err)
		}
	}
	// The sender reuses the A01's control id for other content.
	a01, err := os.ReadFile(filepath.Join("..", "hl7", "tofhir", "testdata", "messages", "adt-a01.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	if err := send([]byte(strings.TrimRight(string(a01), "\r\n") + "\rZPI|other content\r")); err != nil {
		t.Fatalf("HandleMessage(reused control id): %v", err)
	}
	var me *hl7.MessageError
	if err := send([]byte(noAuthority)); !errors.As(err, &me) {
		t.Fatalf("HandleMessage(no authority) = %v, want a refusal", err)
	}
	dft := "MSH|^~\\&|BILLING|NORTH|||20260309||DFT^P03^DFT_P03|DFT-1|P|2.5.1\rEVN|P03\rPID|1||ZZBILL999^^^MRN||Xylophonist^Quentin\r"
	if err := send([]byte(dft)); !errors.As(err, &me) || me.AckCode() != hl7.AckApplicationReject {
		t.Fatalf("HandleMessage(DFT) = %v, want an AR refusal", err)
	}
	return s, secrets
}

func feedDashboard(s *sqlite.Store) *dashboard.Dashboard {
	return dashboard.New(s, dashboard.Options{Clock: func() time.Time { return feedNow }, RequirePerson: true,
		Feeds: s, FeedNames: func(context.Context) []string { return []string{"north"} }})
}

var feedAdmin = &login.Person{ID: "root", Roles: []login.Role{login.RoleAdmin}, Method: "local"}

func feedGet(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", path, nil))
	return rr.Code, rr.Body.String()
}

func TestFeedPage(t *testing.T) {
	s, secrets := feedStore(t)
	h := as(feedAdmin, feedDashboard(s).Handler())
	code, body := feedGet(t, h, "/feeds/north")
	if code != http.StatusOK {
		t.Fatalf("GET /feeds/north = %d:\n%s", code, body)
	}
	for _, want := range []string{
		"ADT^A01", "ORU^R01", "VXU^V04", "DFT^P03", // triggers
		`<td>7</td><td>1</td><td>1</td><td>9</td><td>2</td>`, // AA AE AR, total, failed
		"REF-1", "DFT-1", // control ids of the problems
		"no usable", // a reason
		`name="csrf" value="csrf-token-1"`, `action="/feeds/north/replay"`,
		"<svg", "<rect", "last message", "conversion lag", "control-id reuses",
		`id="reuses"`, // the reused control id listed
	} {
		if !strings.Contains(body, want) {
			t.Errorf("feed page lacks %q", want)
		}
	}
	if len(secrets) < 5 {
		t.Fatalf("only %d PID values collected: %v", len(secrets), secrets)
	}
	for _, secret := range append(secrets, "PID|", "MSH|") {
		if strings.Contains(body, secret) {
			t.Errorf("feed page shows message content %q", secret)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("feed page uses a script or an external asset")
	}
	// 48 hours: 48 bars, the hourly table still lists the 3 busy hours.
	_, wide := feedGet(t, h, "/feeds/north?hours=48")
	if n := strings.Count(wide, "<g>"); n != 48 || strings.Count(wide, `<tr><th scope="row">2026-03-09`) != 4 {
		t.Errorf("48-hour view: %d bars, want 48, and the 4 hours with messages", n)
	}
	// Operations only: a clinician is refused.
	clin := &login.Person{ID: "dr.jones", Roles: []login.Role{login.RoleClinician}, Method: "oidc"}
	if code, _ := feedGet(t, as(clin, feedDashboard(s).Handler()), "/feeds/north"); code != http.StatusForbidden {
		t.Errorf("clinician GET /feeds/north = %d, want 403", code)
	}
	if code, _ := feedGet(t, h, "/feeds/south"); code != http.StatusNotFound {
		t.Errorf("GET /feeds/south = %d, want 404", code)
	}
	// The overview links the feed.
	if _, ov := feedGet(t, h, "/"); !strings.Contains(ov, `href="/feeds/north"`) {
		t.Errorf("overview does not link the feed page")
	}
}

// TestFeedSilentAlertShown: a feed normally busy at this hour that has
// gone quiet shows the alert the Prometheus rule raises.
func TestFeedSilentAlertShown(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	put := func(at time.Time) {
		n++
		id := "C" + strings.Repeat("0", 3) + string(rune('a'+n%26)) + at.Format("0102150405")
		m := store.HL7Message{Connection: "north", SendingApp: "A", SendingFacility: "F", ControlID: id, MessageType: "ADT^A08",
			Raw: []byte(id), ReceivedAt: at, Processed: true, Ack: "AA"}
		if _, err := s.PutHL7(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	for d := 1; d <= 7; d++ {
		for i := range 20 {
			put(feedNow.Truncate(time.Hour).Add(-time.Duration(d)*24*time.Hour + time.Duration(i)*time.Minute))
		}
	}
	put(feedNow.Add(-40 * time.Minute))
	_, body := feedGet(t, as(feedAdmin, feedDashboard(s).Handler()), "/feeds/north")
	if !strings.Contains(body, "EhrgateHL7FeedSilent") {
		t.Errorf("feed page does not show the silent-feed alert")
	}
	if _, ov := feedGet(t, as(feedAdmin, feedDashboard(s).Handler()), "/"); !strings.Contains(ov, "EhrgateHL7FeedSilent") {
		t.Errorf("overview does not show the feed's alert")
	}
}

// TestFeedReplay: the replay button needs the session's CSRF token and a
// same-origin request; after the feed's configuration is fixed, the
// replayed message converts.
func TestFeedReplay(t *testing.T) {
	ctx := context.Background()
	s, _ := feedStore(t)
	var replayed []string
	d := dashboard.New(s, dashboard.Options{Clock: func() time.Time { return feedNow }, RequirePerson: true, Feeds: s,
		Replayed: func(c string) { replayed = append(replayed, c) }})
	h := as(feedAdmin, d.Handler())
	probs, err := s.HL7Problems(ctx, "north", 10)
	if err != nil {
		t.Fatal(err)
	}
	var seq string
	for _, p := range probs {
		if p.ControlID == "REF-1" {
			seq = itoa(p.Seq)
		}
	}
	if seq == "" {
		t.Fatalf("refused message not in problems: %+v", probs)
	}
	post := func(form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/feeds/north/replay", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		return rr
	}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"no token", url.Values{"seq": {seq}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"seq": {seq}, "csrf": {"guess"}}, nil, http.StatusForbidden},
		{"cross-site", url.Values{"seq": {seq}, "csrf": {"csrf-token-1"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"no seq", url.Values{"csrf": {"csrf-token-1"}}, nil, http.StatusBadRequest},
		{"converted message", url.Values{"seq": {itoa(probs[len(probs)-1].Seq - 1)}, "csrf": {"csrf-token-1"}}, nil, http.StatusNotFound},
	} {
		if rr := post(tc.form, tc.hdr); rr.Code != tc.want {
			t.Errorf("%s: POST replay = %d, want %d", tc.name, rr.Code, tc.want)
		}
	}
	if pend, _ := s.PendingHL7(ctx, "north", 0, 10); len(pend) != 0 || len(replayed) != 0 {
		t.Fatalf("refused requests queued %d messages (replayed %v)", len(pend), replayed)
	}
	rr := post(url.Values{"seq": {seq}, "csrf": {"csrf-token-1"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if rr.Code != http.StatusSeeOther || rr.Header().Get("Location") != "/feeds/north?replayed="+seq {
		t.Fatalf("POST replay = %d, Location %q", rr.Code, rr.Header().Get("Location"))
	}
	if len(replayed) != 1 || replayed[0] != "north" {
		t.Errorf("Replayed called with %v", replayed)
	}
	// The feed's configuration is fixed; the converter converts it.
	fixed := hl7store.New(s, hl7store.Options{Connection: "north", Clock: func() time.Time { return feedNow },
		Convert: tofhir.Options{RequireAuthority: true, DefaultAuthority: "MRN"}})
	if n, err := fixed.ProcessPending(ctx); err != nil || n != 1 {
		t.Fatalf("ProcessPending = %d, %v; want 1", n, err)
	}
	_, body := feedGet(t, h, "/feeds/north?replayed="+seq)
	if strings.Contains(body, "REF-1") || !strings.Contains(body, "DFT-1") || !strings.Contains(body, "queued for conversion again") {
		t.Errorf("after replay and conversion the page should list only DFT-1 and confirm the replay")
	}
	if c, _ := s.HL7Counts(ctx, "north"); c.Failed != 1 || c.Processed != 8 {
		t.Errorf("HL7Counts after replay = %+v, want 8 processed, 1 failed", c)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
