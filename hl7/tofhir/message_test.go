package tofhir

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// jsonOf decodes one converted resource for assertions.
func jsonOf(t *testing.T, r Resource) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.JSON, &m); err != nil {
		t.Fatalf("%s/%s: %v", r.Type, r.ID, err)
	}
	return m
}

// pick reads a dotted path ("source.endpoint", "destination.0.name") out of
// decoded JSON and renders it as a string ("" when absent).
func pick(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

const a01Body = "\rPID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F\rPV1|1|I|4W^412^A||||||||||||||||V5001^^^NORTHMC^VN\r"

// TestMessageHeader: MSH to MessageHeader, field by field (IG Segment MSH
// to MessageHeader map).
func TestMessageHeader(t *testing.T) {
	for _, tt := range []struct {
		name string
		msh  string
		want map[string]string
	}{
		{"everything", `MSH|^~\&|EPICADT^1.2.3^ISO|NORTHMC^2.16.840.1.1^ISO|EHRGATE^4.5.6^ISO|GATEWAY|20260301083100-0500|SEC1|ADT^A01^ADT_A01|C1|T|2.5.1|||||USA||en^English^ISO639`,
			map[string]string{
				"eventCoding.code": "A01", "eventCoding.system": "http://terminology.hl7.org/CodeSystem/v2-0003",
				"source.name": "EPICADT", "source.endpoint": "urn:oid:1.2.3",
				"sender.display": "NORTHMC", "sender.identifier.value": "urn:oid:2.16.840.1.1", "sender.type": "Organization",
				"destination.0.name": "EHRGATE", "destination.0.endpoint": "urn:oid:4.5.6", "destination.0.receiver.display": "GATEWAY",
				"meta.security.0.code": "SEC1", "meta.tag.0.code": "T", "language": "en",
				"meta.source": "urn:hl7v2:EPICADT|NORTHMC|C1",
			}},
		{"names only", `MSH|^~\&|EPICADT|NORTHMC|||20260301083100||ADT^A01|C2|P|2.5.1`,
			map[string]string{
				"source.name": "EPICADT", "source.endpoint": "", "source._endpoint.extension.0.valueCode": "unknown",
				"sender.display": "NORTHMC", "sender.identifier.value": "", "destination": "", "meta.tag.0.code": "P", "meta.security": "",
			}},
		{"uuid and networks", `MSH|^~\&||NORTHMC|||20260301083100||ADT^A01|C3|P|2.5.1|||||||^^^de-DE||||Central Org|NET^0b0c4e0e-1111-4222-8333-944455556666^UUID|RCV^7.8^ISO`,
			map[string]string{
				"source.name": "NET", "source.endpoint": "urn:uuid:0b0c4e0e-1111-4222-8333-944455556666",
				"destination.0.name": "RCV", "destination.0.endpoint": "urn:oid:7.8", "destination.0.receiver.display": "Central Org",
				"language": "de-DE",
			}},
		{"responsible org names the sender", `MSH|^~\&|APP|FAC|||20260301||ADT^A01|C4|P|2.5.1||||||||||North Medical Center`,
			map[string]string{"sender.display": "North Medical Center", "destination": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Convert(mustParse(t, tt.msh+a01Body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			mhs := r.Of("MessageHeader")
			if len(mhs) != 1 || mhs[0].PatientID != "" {
				t.Fatalf("MessageHeaders = %+v, want one without a patient", mhs)
			}
			mh := jsonOf(t, mhs[0])
			for path, want := range tt.want {
				if got := pick(mh, path); got != want {
					t.Errorf("MessageHeader.%s = %q, want %q", path, got, want)
				}
			}
		})
	}
}

// TestProvenance: the Provenance of a message targets what it converted,
// names the sender, points at the MessageHeader, and is the message's
// (same ids for a resend, new ids for other content under a reused
// control id).
func TestProvenance(t *testing.T) {
	const msh = `MSH|^~\&|EPICADT|NORTHMC^2.16.840.1.1^ISO|EHRGATE|EHRGATE|%s||ADT^A01^ADT_A01|%s|P|2.5.1`
	conv := func(when, ctl, body string) *Result {
		t.Helper()
		r, err := Convert(mustParse(t, fmt.Sprintf(msh, when, ctl)+body), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := conv("20260301083100-0500", "C1", a01Body)
	provs, mhs := r.Of("Provenance"), r.Of("MessageHeader")
	if len(provs) != 1 || len(mhs) != 1 {
		t.Fatalf("got %d Provenance, %d MessageHeader, want 1 and 1", len(provs), len(mhs))
	}
	if last := r.Resources[len(r.Resources)-1]; last.Type != "Provenance" || r.Resources[0].Type != "Patient" {
		t.Errorf("resources = %s first, %s last; want Patient first and Provenance last", r.Resources[0].Type, last.Type)
	}
	p := jsonOf(t, provs[0])
	var targets []string
	for _, x := range p["target"].([]any) {
		targets = append(targets, x.(map[string]any)["reference"].(string))
	}
	want := []string{"Patient/" + r.PatientID, "Encounter/" + r.Of("Encounter")[0].ID}
	if strings.Join(targets, " ") != strings.Join(want, " ") || provs[0].PatientID != r.PatientID {
		t.Errorf("targets = %v (patient %q), want %v (%q)", targets, provs[0].PatientID, want, r.PatientID)
	}
	for path, want := range map[string]string{
		"recorded": "2026-03-01T08:31:00-05:00", "occurredDateTime": "2026-03-01T08:31:00-05:00",
		"activity.coding.0.display": "message - ADT^A01^ADT_A01", "activity.coding.0.code": "A01",
		"agent.0.type.coding.0.code": "author", "agent.0.who.display": "NORTHMC", "agent.0.who.type": "Organization",
		"agent.0.who.identifier.value": "urn:oid:2.16.840.1.1", "agent.1": "",
		"entity.0.role": "source", "entity.0.what.reference": "MessageHeader/" + mhs[0].ID,
		"entity.1.role": "source", "entity.1.what.display": "EPICADT", "entity.1.what.type": "Device",
	} {
		if got := pick(p, path); got != want {
			t.Errorf("Provenance.%s = %q, want %q", path, got, want)
		}
	}
	resent := conv("20260301090000-0500", "C1", a01Body) // MSH-7 differs: the same message
	if resent.Of("Provenance")[0].ID != provs[0].ID || resent.Of("MessageHeader")[0].ID != mhs[0].ID {
		t.Errorf("a resend got new message ids")
	}
	reused := conv("20260301083100-0500", "C1", strings.Replace(a01Body, "4W^412^A", "4W^413^A", 1))
	if reused.Of("Provenance")[0].ID == provs[0].ID || reused.Of("MessageHeader")[0].ID == mhs[0].ID {
		t.Errorf("a reused control id with other content kept the message ids")
	}
	if d := jsonOf(t, conv("20260301", "C2", a01Body).Of("Provenance")[0]); d["recorded"] != nil {
		t.Errorf("date-only MSH-7 gave recorded %v, want none (not an instant)", d["recorded"])
	}
	// MSH-22 (sending responsible organization) is the author instead of MSH-4.
	r22, err := Convert(mustParse(t, `MSH|^~\&|EPICADT|NORTHMC|||20260301||ADT^A01|C22|P|2.5.1||||||||||North Medical Center`+a01Body), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := jsonOf(t, r22.Of("Provenance")[0]); pick(p, "agent.0.who.display") != "North Medical Center" || pick(p, "agent.1") != "" {
		t.Errorf("Provenance agents with MSH-22 = %s", pick(p, "agent"))
	}

	// A merge also changes the retired patient.
	mg, err := Convert(parseFile(t, "testdata/messages/adt-a40.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pick(jsonOf(t, mg.Of("Provenance")[0]), "target"); !strings.Contains(got, "Patient/"+mg.Merge.RetiredID) {
		t.Errorf("A40 Provenance targets %s, want the retired patient too", got)
	}

	// A17: one Provenance per patient, each with its own patient's resources.
	sw, err := Convert(mustParse(t, a17("PID|1||1001^^^FAC^MR||Alpha^Ann", "PV1|1|I|4W^1^B",
		"PID|2||1002^^^FAC^MR||Beta^Bob", "PV1|1|I|4W^1^A")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ps := sw.Of("Provenance"); len(ps) != 2 || ps[0].PatientID != sw.Patients[0].ID || ps[1].PatientID != sw.Patients[1].ID || ps[0].ID == ps[1].ID {
		t.Fatalf("A17 Provenances = %+v, want one per patient", ps)
	}
	for i, ps := range sw.Of("Provenance") {
		got := pick(jsonOf(t, ps), "target")
		other := sw.Patients[1-i].ID
		if !strings.Contains(got, "Patient/"+sw.Patients[i].ID) || strings.Contains(got, other) {
			t.Errorf("A17 Provenance %d targets %s", i, got)
		}
		for _, r := range sw.Resources {
			if r.PatientID == other && strings.Contains(got, r.Type+"/"+r.ID) {
				t.Errorf("A17 Provenance %d targets the other patient's %s/%s", i, r.Type, r.ID)
			}
		}
	}
}

func TestRetargetProvenance(t *testing.T) {
	raw := []byte(`{"resourceType":"Provenance","id":"p","target":[{"reference":"Patient/a"},{"reference":"Encounter/b"}]}`)
	for _, tt := range []struct {
		name string
		keep map[string]bool
		want string
		ok   bool
	}{
		{"all", map[string]bool{"Patient/a": true, "Encounter/b": true}, `[{"reference":"Patient/a"},{"reference":"Encounter/b"}]`, true},
		{"one", map[string]bool{"Encounter/b": true}, `[{"reference":"Encounter/b"}]`, true},
		{"none", nil, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, ok, err := RetargetProvenance(raw, func(r string) bool { return tt.keep[r] })
			if err != nil || ok != tt.ok {
				t.Fatalf("RetargetProvenance = %v, %v, want ok %v", ok, err, tt.ok)
			}
			if ok {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				if got := pick(m, "target"); got != tt.want {
					t.Errorf("targets = %s, want %s", got, tt.want)
				}
			}
		})
	}
	if _, _, err := RetargetProvenance([]byte("{"), func(string) bool { return true }); err == nil {
		t.Error("RetargetProvenance(invalid JSON) = nil error")
	}
}

// TestConformanceMessageHeader compares the MessageHeader of each MSH
// mapping-inventory fixture (CDC ReportStream, following the IG) with
// ehrgate's, on what both map: event, source and destination endpoints and
// names, language, security and processing id. The fixtures are MSH-only
// (no PID), so the header is built directly.
func TestConformanceMessageHeader(t *testing.T) {
	root := filepath.Join(fixturesDir(t), "hl7v2", "mapping-inventory", "msh")
	files, _ := filepath.Glob(filepath.Join(root, "*.hl7"))
	more, _ := filepath.Glob(filepath.Join(root, "hd", "*.hl7"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Skipf("no MSH mapping fixtures under %s", root)
	}
	// ReportStream renders an HD typed CLIA as "<HD.1>-CLIA:<HD.2>" in
	// source.name; ehrgate keeps HD.1 as the name (the IG maps HD.1 there).
	known := map[string]bool{"HD-to-Source-clia|source.name": true}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hl7")
		t.Run(name, func(t *testing.T) {
			m := parseFile(t, f)
			var bundle struct {
				Entry []struct{ Resource map[string]any } `json:"entry"`
			}
			b, err := os.ReadFile(strings.TrimSuffix(f, ".hl7") + ".fhir")
			if err != nil {
				t.Skip("no expected output")
			}
			if err := json.Unmarshal(b, &bundle); err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			for _, e := range bundle.Entry {
				if e.Resource["resourceType"] == "MessageHeader" {
					want = e.Resource
				}
			}
			mt := m.MessageType()
			c := &conv{m: m, o: Options{}, source: Source(m), res: &Result{MessageType: mt.Code, Trigger: mt.Trigger}}
			c.messageHeader("mh")
			got := jsonOf(t, c.res.Resources[0])
			facts := func(r map[string]any) map[string]string {
				out := map[string]string{}
				for _, p := range []string{"eventCoding.code", "eventCoding.system", "source.endpoint", "language"} {
					out[p] = pick(r, p)
				}
				if n := pick(r, "source.name"); n != "" || pick(want, "source.name") != "" {
					out["source.name"] = n
				}
				for _, p := range []string{"security", "tag"} {
					var codes []string
					if meta, _ := r["meta"].(map[string]any); meta != nil {
						xs, _ := meta[p].([]any)
						for _, x := range xs {
							codes = append(codes, pick(x, "code"))
						}
					}
					out["meta."+p] = strings.Join(codes, ",")
				}
				var dests []string
				ds, _ := r["destination"].([]any)
				for _, d := range ds {
					if n := pick(d, "name"); n != "" {
						dests = append(dests, n+"@"+pick(d, "endpoint"))
					}
				}
				sort.Strings(dests)
				out["destination name@endpoint"] = strings.Join(dests, " ")
				return out
			}
			wf, gf := facts(want), facts(got)
			for k, w := range wf {
				if gf[k] != w && !known[name+"|"+k] {
					t.Errorf("%s = %q, reference %q", k, gf[k], w)
				}
			}
		})
	}
}
