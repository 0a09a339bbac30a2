package hl7feed

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"ehrgate/hl7"
	"ehrgate/synth"
)

// Message is one generated HL7 v2 message.
type Message struct {
	ControlID string
	Type      string // e.g. "ADT^A01"
	At        time.Time
	Patient   int // synth patient index
	Bytes     []byte
}

// Identity of the simulated sender.
const (
	SendingApp      = "EHRSIM"
	SendingFacility = "SIMHOSP"
	// Authority is the assigning authority of MRNs (PID-3.4): a URI equal
	// to the MRN system of synth's (and so ehrsim's) Patients, so the
	// converted identifier is {system: http://hospital.example.org/mrn,
	// value: <MRN>} and Patient?identifier=<system>|<value> finds the same
	// patient on the simulated FHIR server (event-driven refresh).
	Authority = "SIMHOSP&http://hospital.example.org/mrn&URI"
	// VisitAuthority assigns visit numbers (PV1-19.4).
	VisitAuthority = "SIMHOSP&2.16.840.1.113883.3.9999.1&ISO"
)

type patientJSON struct {
	ID   string `json:"id"`
	Name []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Gender     string `json:"gender"`
	BirthDate  string `json:"birthDate"`
	Identifier []struct {
		System string `json:"system"`
		Value  string `json:"value"`
		Type   *struct {
			Coding []struct{ Code string } `json:"coding"`
		} `json:"type"`
	} `json:"identifier"`
	Address []struct {
		Line       []string `json:"line"`
		City       string   `json:"city"`
		State      string   `json:"state"`
		PostalCode string   `json:"postalCode"`
	} `json:"address"`
}

type coding struct {
	System, Code, Display string
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

type resJSON struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	Class        *coding `json:"class"`
	Period       *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"period"`
	Participant []struct {
		Individual struct{ Display string } `json:"individual"`
	} `json:"participant"`
	Code              *concept                     `json:"code"`
	VaccineCode       *concept                     `json:"vaccineCode"`
	EffectiveDateTime string                       `json:"effectiveDateTime"`
	Issued            string                       `json:"issued"`
	OccurrenceDate    string                       `json:"occurrenceDateTime"`
	LotNumber         string                       `json:"lotNumber"`
	Result            []struct{ Reference string } `json:"result"`
	ValueQuantity     *struct {
		Value json.Number `json:"value"`
		Unit  string      `json:"unit"`
		Code  string      `json:"code"`
	} `json:"valueQuantity"`
	ValueString    string `json:"valueString"`
	ReferenceRange []struct {
		Text string `json:"text"`
		Low  *struct {
			Value json.Number `json:"value"`
		} `json:"low"`
		High *struct {
			Value json.Number `json:"value"`
		} `json:"high"`
	} `json:"referenceRange"`
}

var esc = func(s string) string { return hl7.Escape(s, hl7.DefaultDelimiters) }

func ts(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if d, err := time.Parse("2006-01-02", s); err == nil {
			return d.Format("20060102")
		}
		return ""
	}
	return t.UTC().Format("20060102150405") + "+0000"
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, _ = time.Parse("2006-01-02", s)
	}
	return t
}

func v2code(system string) string {
	switch system {
	case "http://loinc.org":
		return "LN"
	case "http://snomed.info/sct":
		return "SCT"
	case "http://hl7.org/fhir/sid/cvx":
		return "CVX"
	}
	return "L"
}

// Messages derives the feed for patients [0, n) of g, deterministically:
// for each patient an A04 registration, then per encounter an admit (A01
// for inpatient/emergency, A04 otherwise), an A08 update and, when
// finished, an A03; an ORU^R01 per DiagnosticReport with its Observations;
// a VXU^V04 per Immunization. Messages of all patients are ordered by
// event time (ties by patient), control ids are "SIM<seq>".
func Messages(g *synth.Generator, n int) []Message {
	var out []Message
	for i := 0; i < n; i++ {
		out = append(out, patientMessages(g, i)...)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].At.Before(out[b].At) })
	for k := range out {
		id := fmt.Sprintf("SIM%08d", k+1)
		out[k].ControlID = id
		out[k].Bytes = []byte(strings.Replace(string(out[k].Bytes), "|@CTRL@|", "|"+id+"|", 1))
	}
	return out
}

func patientMessages(g *synth.Generator, i int) []Message {
	res := g.Resources(i)
	var p patientJSON
	_ = json.Unmarshal(res[0].JSON, &p)
	byID := map[string]resJSON{}
	var all []resJSON
	for _, r := range res[1:] {
		var x resJSON
		if json.Unmarshal(r.JSON, &x) == nil {
			byID[x.ResourceType+"/"+x.ID] = x
			all = append(all, x)
		}
	}
	mrn := p.ID
	for _, id := range p.Identifier {
		if id.Type != nil && len(id.Type.Coding) > 0 && id.Type.Coding[0].Code == "MR" {
			mrn = id.Value
		}
	}
	pid := pidSegment(p, mrn)
	var out []Message
	add := func(typ, structure string, at time.Time, segs ...string) {
		trig := strings.SplitN(typ, "^", 2)[1]
		msh := fmt.Sprintf("MSH|^~\\&|%s|%s|EHRGATE|EHRGATE|%s||%s^%s|@CTRL@|P|2.5.1", SendingApp, SendingFacility,
			at.UTC().Format("20060102150405")+"+0000", typ, structure)
		lines := append([]string{msh}, segs...)
		_ = trig
		out = append(out, Message{Type: typ, At: at, Patient: i, Bytes: []byte(strings.Join(lines, "\r") + "\r")})
	}
	first := parseTime(p.BirthDate)
	for _, r := range all {
		if r.ResourceType == "Encounter" && r.Period != nil {
			first = parseTime(r.Period.Start).Add(-time.Hour)
			break
		}
	}
	add("ADT^A04", "ADT_A01", first, "EVN|A04|"+first.UTC().Format("20060102150405")+"+0000", pid,
		"PV1|1|O|REG^^^SIMHOSP")
	for _, r := range all {
		switch r.ResourceType {
		case "Encounter":
			if r.Period == nil {
				continue
			}
			visit := r.ID + "^^^" + VisitAuthority + "^VN"
			class, trig := "O", "A04"
			if r.Class != nil && (r.Class.Code == "IMP" || r.Class.Code == "EMER") {
				class, trig = map[string]string{"IMP": "I", "EMER": "E"}[r.Class.Code], "A01"
			}
			doc := ""
			if len(r.Participant) > 0 {
				f := strings.Fields(strings.TrimPrefix(r.Participant[0].Individual.Display, "Dr. "))
				if len(f) >= 2 {
					doc = "D" + fmt.Sprint(len(f[1])*97+len(f[0])) + "^" + esc(f[len(f)-1]) + "^" + esc(f[0]) + "^^^Dr"
				}
			}
			start := ts(r.Period.Start)
			pv1 := func(end string) string {
				f := make([]string, 46)
				f[0], f[1], f[2], f[3], f[7], f[19], f[44], f[45] = "PV1", "1", class, "MAIN^^^SIMHOSP", doc, visit, start, end
				return strings.Join(f, "|")
			}
			at := parseTime(r.Period.Start)
			add("ADT^"+trig, "ADT_A01", at, "EVN|"+trig+"|"+start, pid, pv1(""))
			add("ADT^A08", "ADT_A01", at.Add(10*time.Minute), "EVN|A08|"+start, pid, pv1(""))
			if r.Status == "finished" && r.Period.End != "" {
				add("ADT^A03", "ADT_A03", parseTime(r.Period.End), "EVN|A03|"+ts(r.Period.End), pid, pv1(ts(r.Period.End)))
			}
		case "DiagnosticReport":
			if r.Code == nil || len(r.Code.Coding) == 0 {
				continue
			}
			c := r.Code.Coding[0]
			status := map[string]string{"final": "F", "preliminary": "P", "amended": "C", "corrected": "C"}[r.Status]
			if status == "" {
				status = "F"
			}
			segs := []string{pid, fmt.Sprintf("OBR|1|%s^EHRSIM|%s^SIMLAB|%s^%s^%s|||%s|||||||||||||||%s|||%s",
				r.ID, r.ID, c.Code, esc(c.Display), v2code(c.System), ts(r.EffectiveDateTime), ts(r.Issued), status)}
			for k, ref := range r.Result {
				o, ok := byID[ref.Reference]
				if !ok || o.Code == nil || len(o.Code.Coding) == 0 {
					continue
				}
				oc := o.Code.Coding[0]
				vt, val, unit, rng := "ST", "", "", ""
				if o.ValueQuantity != nil {
					vt, val = "NM", string(o.ValueQuantity.Value)
					unit = esc(firstNonEmpty(o.ValueQuantity.Code, o.ValueQuantity.Unit)) + "^^UCUM"
				} else {
					val = esc(o.ValueString)
				}
				if len(o.ReferenceRange) > 0 && o.ReferenceRange[0].Low != nil && o.ReferenceRange[0].High != nil {
					rng = string(o.ReferenceRange[0].Low.Value) + "-" + string(o.ReferenceRange[0].High.Value)
				}
				segs = append(segs, fmt.Sprintf("OBX|%d|%s|%s^%s^%s||%s|%s|%s||||%s|||%s", k+1, vt, oc.Code, esc(oc.Display),
					v2code(oc.System), val, unit, rng, status, ts(firstNonEmpty(o.EffectiveDateTime, r.EffectiveDateTime))))
			}
			at := parseTime(firstNonEmpty(r.Issued, r.EffectiveDateTime))
			add("ORU^R01", "ORU_R01", at, segs...)
		case "Immunization":
			if r.VaccineCode == nil || len(r.VaccineCode.Coding) == 0 {
				continue
			}
			c := r.VaccineCode.Coding[0]
			status := "CP"
			if r.Status == "not-done" {
				status = "RE"
			}
			add("VXU^V04", "VXU_V04", parseTime(r.OccurrenceDate), pid, "ORC|RE||"+r.ID+"^EHRSIM",
				fmt.Sprintf("RXA|0|1|%s|%s|%s^%s^CVX|999|||00^New record^NIP001||||||%s||||%s|A",
					ts(r.OccurrenceDate), ts(r.OccurrenceDate), c.Code, esc(c.Display), esc(r.LotNumber), status))
		}
	}
	return out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func pidSegment(p patientJSON, mrn string) string {
	name := ""
	if len(p.Name) > 0 {
		n := p.Name[0]
		given, middle := "", ""
		if len(n.Given) > 0 {
			given = n.Given[0]
		}
		if len(n.Given) > 1 {
			middle = n.Given[1]
		}
		name = esc(n.Family) + "^" + esc(given) + "^" + esc(middle)
	}
	addr := ""
	if len(p.Address) > 0 {
		a := p.Address[0]
		line := ""
		if len(a.Line) > 0 {
			line = a.Line[0]
		}
		addr = esc(line) + "^^" + esc(a.City) + "^" + esc(a.State) + "^" + esc(a.PostalCode) + "^USA^H"
	}
	sex := map[string]string{"male": "M", "female": "F", "other": "O", "unknown": "U"}[p.Gender]
	return fmt.Sprintf("PID|1||%s^^^%s^MR||%s||%s|%s|||%s", esc(mrn), Authority, name,
		strings.ReplaceAll(p.BirthDate, "-", ""), sex, addr)
}
