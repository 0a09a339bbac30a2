package synth

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// --- MedicationRequest -------------------------------------------------------

type medOrder struct {
	m      medDef
	status string
	at     time.Time
	enc    int
	reason string // Condition id or ""
}

func (p *patientGen) condID(key string) string {
	for _, c := range p.conds {
		if c.def.key == key {
			return c.id
		}
	}
	return ""
}

func (p *patientGen) planMedications() []medOrder {
	r := p.r
	var orders []medOrder
	if p.idx == IndexManyMeds {
		return p.refillHistory()
	}
	ordered := map[string]bool{}
	for _, c := range p.conds {
		meds := condMeds[c.def.key]
		if len(meds) == 0 || !c.abate.IsZero() || c.mode == 2 && c.cat == catEncDx {
			continue
		}
		n := 1
		if len(meds) > 1 && r.chance(secondDrug[c.def.key]) {
			n = 2
		}
		start := r.intn(len(meds))
		for j := 0; j < n; j++ {
			m := meds[(start+j)%len(meds)]
			if m.c == mAtorva.c && r.chance(0.15) {
				m = mNDCLipitor
			}
			if ordered[m.c.code] {
				continue
			}
			ordered[m.c.code] = true
			o := medOrder{m: m, status: "active", enc: -1, reason: c.id}
			from := c.onset
			if lim := p.now.Add(-540 * day); from.Before(lim) {
				from = lim
			}
			if k := p.encAfter(from); k >= 0 {
				o.at, o.enc = p.encs[k].start.Add(r.dur(20*time.Minute, 50*time.Minute)), k
			} else {
				o.at = p.now.Add(-r.dur(10*day, 300*day))
			}
			if r.chance(0.08) {
				o.status = "stopped"
			}
			// Earlier orders of the same drug, renewed about yearly.
			prev := o.at
			for renew := 0; renew < 2 && r.chance(0.6); renew++ {
				prev = prev.Add(-r.dur(330*day, 430*day))
				if prev.Before(c.onset) {
					break
				}
				orders = append(orders, medOrder{m: m, status: "completed", at: prev, enc: -1, reason: c.id})
			}
			orders = append(orders, o)
		}
	}
	// An order still "active" years after it was written: nobody closed it.
	if p.idx == IndexDemo || r.chance(0.2) {
		for k := range orders {
			if orders[k].status != "active" {
				continue
			}
			t := p.now.Add(-time.Duration(r.fbetween(2.1, 5) * float64(year)))
			if t.Before(p.birth.Add(year)) {
				break
			}
			orders[k].at, orders[k].enc = t, -1
			stale := orders[k].m.c
			orders = slices.DeleteFunc(orders, func(o medOrder) bool { return o.m.c == stale && o.status == "completed" })
			break
		}
	}
	for _, c := range p.conds {
		if infectiousK[c.def.key] && !p.penicillin && c.enc >= 0 {
			orders = append(orders, medOrder{m: mAmoxicillin, status: "completed", at: p.encs[c.enc].start.Add(time.Hour), enc: c.enc, reason: c.id})
		}
	}
	if r.chance(0.15) {
		m := pick(r, ndcMeds)
		st := "completed"
		if m.c == mNDCAPAP.c {
			st = "active"
		}
		k := r.intn(len(p.encs))
		orders = append(orders, medOrder{m: m, status: st, at: p.encs[k].start.Add(30 * time.Minute), enc: k})
	}
	for len(orders) < 2 || (len(orders) < 4 && r.chance(0.4)) {
		m := pick(r, prnMeds)
		if p.age < 12 {
			m = mAcetaminoph
		}
		if slices.ContainsFunc(orders, func(o medOrder) bool { return o.m.c == m.c }) && len(orders) >= 2 {
			break
		}
		k := r.intn(len(p.encs))
		st := "completed"
		if r.chance(0.5) {
			st = "active"
		}
		orders = append(orders, medOrder{m: m, status: st, at: p.encs[k].start.Add(40 * time.Minute), enc: k})
	}
	if len(orders) > 10 {
		orders = orders[:10]
	}
	for k := range orders {
		orders[k].at = p.clamp(orders[k].at).Truncate(time.Minute)
	}
	slices.SortStableFunc(orders, func(a, b medOrder) int { return a.at.Compare(b.at) })
	return orders
}

// secondDrug is the chance that a problem is treated with two of its drugs
// at once; never for problems where that would be a duplicate therapy
// (two statins).
var secondDrug = map[string]float64{"htn": 0.4, "asthma": 0.6, "copd": 0.6, "hf": 1, "af": 1, "dm2": 0.4, "oaknee": 0.3}

// refillHistory is the polypharmacy edge case: a monthly order for each of
// eight chronic medications over thirty months.
func (p *patientGen) refillHistory() []medOrder {
	r := p.r
	type chronic struct {
		m   medDef
		key string
	}
	list := []chronic{{mLisinopril, "htn"}, {mAmlodipine, "htn"}, {mMetformin, "dm2"}, {mAtorva, "hld"},
		{mFurosemide, "hf"}, {mMetoprolol, "af"}, {mWarfarin, "af"}, {mLevothyrox, "hypot"}}
	var orders []medOrder
	for month := 29; month >= 0; month-- {
		for _, c := range list {
			o := medOrder{m: c.m, status: "completed", enc: -1, reason: p.condID(c.key)}
			o.at = p.now.Add(-time.Duration(month)*30*day - r.dur(day, 6*day)).Truncate(time.Minute)
			if month == 0 {
				o.status = "active"
			}
			orders = append(orders, o)
		}
	}
	return orders
}

func (p *patientGen) emitMedications() {
	w := &p.w
	for _, o := range p.planMedications() {
		p.begin("MedicationRequest", p.newID("med", &p.n.med), p.lastUpdated(o.at))
		w.ks("status", o.status)
		w.ks("intent", "order")
		cat := code{"http://terminology.hl7.org/CodeSystem/medicationrequest-category", "outpatient", "Outpatient"}
		if o.enc >= 0 && p.encs[o.enc].class == classIMP {
			cat = code{cat.sys, "inpatient", "Inpatient"}
		}
		w.category("category", cat)
		w.concept("medicationCodeableConcept", o.m.text, o.m.c)
		p.subject()
		p.encRef(o.enc)
		w.kt("authoredOn", o.at)
		clin := clinicians[int(o.at.Unix()/60)%len(clinicians)]
		if o.enc >= 0 {
			clin = p.encs[o.enc].clinician
		}
		w.refDisplay("requester", clin)
		if o.reason != "" {
			w.ka("reasonReference")
			w.open()
			w.key("reference")
			w.str2("Condition/", o.reason)
			w.close()
			w.closeArr()
		}
		w.ka("dosageInstruction")
		w.open()
		w.ks("text", o.m.sig)
		if o.m.c == mAmoxicillin.c {
			// A ten-day course: its end is in the order itself
			// (Timing.repeat.boundsPeriod).
			w.ko("timing")
			w.ko("repeat")
			w.key("boundsPeriod")
			w.open()
			w.kd("start", o.at)
			w.kd("end", o.at.Add(9*day))
			w.close()
			w.close()
			w.close()
		}
		w.close()
		w.closeArr()
		// Every prescription may be dispensed for a year
		// (dispenseRequest.validityPeriod); drawn from no random number, so
		// the rest of the dataset is unchanged by it.
		w.ko("dispenseRequest")
		w.key("validityPeriod")
		w.open()
		w.kd("start", o.at)
		w.kd("end", o.at.Add(365*day))
		w.close()
		w.close()
		p.end()
	}
}

// --- AllergyIntolerance --------------------------------------------------------

func (p *patientGen) emitAllergies() {
	r, w := p.r, &p.w
	for _, a := range p.allergy {
		rec := p.encs[r.intn(len(p.encs))].start.Add(15 * time.Minute)
		p.begin("AllergyIntolerance", p.newID("alg", &p.n.alg), p.lastUpdated(rec))
		if r.chance(0.9) {
			w.concept("clinicalStatus", "", algActive)
		} else {
			w.concept("clinicalStatus", "", algInactive)
		}
		if r.chance(0.85) {
			w.concept("verificationStatus", "", algConfirmed)
		} else {
			w.concept("verificationStatus", "", algUnconfirm)
		}
		w.ks("type", a.typ)
		w.kstrs("category", a.category)
		w.ks("criticality", a.criticality)
		w.concept("code", a.text, a.codes...)
		w.kref("patient", "Patient", p.pid)
		if r.chance(0.5) {
			on := p.birth.Add(time.Duration(r.float() * float64(rec.Sub(p.birth))))
			w.kd("onsetDateTime", on)
		}
		w.kt("recordedDate", rec)
		w.ka("reaction")
		w.open()
		w.ka("manifestation")
		m := pick(r, reactions)
		if a.criticality == "high" && r.chance(0.3) {
			m = reactions[2] // anaphylaxis
		}
		w.conceptV(trimTag(m.display), m)
		if r.chance(0.3) {
			m2 := pick(r, reactions)
			if m2 != m {
				w.conceptV(trimTag(m2.display), m2)
			}
		}
		w.closeArr()
		sev := "mild"
		switch {
		case m == reactions[2]:
			sev = "severe"
		case r.chance(0.4):
			sev = "moderate"
		}
		w.ks("severity", sev)
		w.close()
		w.closeArr()
		p.end()
	}
}

// --- Immunization ---------------------------------------------------------------

type shot struct {
	c  code
	at time.Time
}

func (p *patientGen) planImmunizations() []shot {
	r := p.r
	var shots []shot
	add := func(c code, at time.Time) {
		if !at.Before(p.birth) && at.Before(p.now.Add(-day)) {
			shots = append(shots, shot{c, at.Add(time.Duration(r.between(14, 22)) * time.Hour)})
		}
	}
	months := func(m int) time.Time { return p.birth.AddDate(0, m, r.intn(14)) }
	if p.age < 18 {
		add(vHepBPed, p.birth)
		add(vHepBPed, months(1))
		for _, m := range []int{2, 4, 6} {
			add(vDTaP, months(m))
			add(vPCV13, months(m))
		}
		add(vIPV, months(2))
		add(vIPV, months(4))
		add(vHib, months(2))
		add(vHib, months(4))
		add(vMMR, months(12))
		add(vVaricella, months(12))
		add(vHepAPed, months(12))
		add(vDTaP, months(15))
		add(vMMR, months(48))
		add(vDTaP, months(48))
		add(vTdap, months(132))
		add(vMenACWY, months(132))
		add(vHPV9, months(132))
		add(vHPV9, months(140))
	} else {
		if r.chance(0.5) {
			add(vTdap, p.now.Add(-r.dur(day, 9*year)))
		}
		if r.chance(0.7) {
			c := pick(r, []code{vCovidPfz, vCovidMod})
			t := time.Date(2021, time.March, 1, 0, 0, 0, 0, time.UTC).Add(r.dur(0, 120*day))
			add(c, t)
			add(c, t.Add(21*day+r.dur(0, 14*day)))
		}
		if r.chance(0.15) {
			add(vHepBAdult, p.now.Add(-r.dur(day, 15*year)))
		}
		if p.age >= 65 && r.chance(0.6) {
			add(vPPV23, p.birth.AddDate(65, 0, r.intn(400)))
		}
		if p.age >= 50 && r.chance(0.4) {
			add(vZoster, p.birth.AddDate(50, 0, r.intn(3000)))
		}
	}
	// Seasonal influenza in the autumn of recent years.
	for y := p.now.Year() - 4; y <= p.now.Year(); y++ {
		if r.chance(0.6) {
			t := time.Date(y, time.September, 15, 0, 0, 0, 0, time.UTC).Add(r.dur(0, 75*day))
			if p.ageAt(t) >= 0.5 {
				add(pick(r, []code{vFlu, vFlu, vFluTri}), t)
			}
		}
	}
	slices.SortStableFunc(shots, func(a, b shot) int { return a.at.Compare(b.at) })
	if len(shots) > 8 {
		shots = shots[len(shots)-8:]
	}
	return shots
}

func (p *patientGen) emitImmunizations() {
	r, w := p.r, &p.w
	for _, s := range p.planImmunizations() {
		p.begin("Immunization", p.newID("imm", &p.n.imm), p.lastUpdated(s.at))
		w.ks("status", "completed")
		w.concept("vaccineCode", s.c.display, s.c)
		w.kref("patient", "Patient", p.pid)
		w.kt("occurrenceDateTime", s.at)
		w.kb("primarySource", r.chance(0.9))
		w.ks("lotNumber", string(rune('A'+r.intn(26)))+string(rune('A'+r.intn(26)))+strconv.Itoa(r.between(1000, 9999)))
		p.end()
	}
}

// --- Procedure ---------------------------------------------------------------------

func (p *patientGen) emitProcedures() {
	r, w := p.r, &p.w
	for _, pp := range p.procs {
		e := p.encs[pp.enc]
		t := e.start.Add(r.dur(15*time.Minute, 45*time.Minute))
		if !e.end.IsZero() && t.After(e.end) {
			t = e.start
		}
		p.begin("Procedure", p.newID("proc", &p.n.proc), p.lastUpdated(t))
		w.ks("status", "completed")
		d := pp.def
		switch f := r.float(); {
		case d.sct.code == "":
			w.concept("code", d.text, d.cpt)
		case d.cpt.code == "":
			w.concept("code", d.text, d.sct)
		case f < 0.6:
			w.concept("code", d.text, d.sct, d.cpt)
		case f < 0.85:
			w.concept("code", d.text, d.sct)
		default:
			w.concept("code", d.text, d.cpt)
		}
		p.subject()
		w.kref("encounter", "Encounter", e.id)
		if d.minutes > 0 {
			w.period("performedPeriod", t, t.Add(time.Duration(d.minutes)*time.Minute))
		} else {
			w.kt("performedDateTime", t)
		}
		p.end()
	}
}

// --- DiagnosticReport ----------------------------------------------------------------

func (p *patientGen) emitReports() {
	for _, d := range p.draws {
		p.labReport(d, drBMP, "Basic metabolic panel", d.bmp)
		p.labReport(d, drCBC, "Complete blood count", d.cbc)
		p.labReport(d, drLipid, "Lipid panel", d.lipid)
	}
	r := p.r
	imaging := -1
	for _, pp := range p.procs {
		if pp.def.sct == pChestXR.sct {
			imaging = pp.enc
		}
	}
	title := "XR Chest 2 Views"
	if imaging < 0 && (p.idx == IndexDemo || r.chance(0.2)) {
		imaging = p.lastInPerson()
		if p.has["oaknee"] || r.chance(0.3) {
			title = "XR Knee 3 Views Right"
		}
	}
	if imaging < 0 {
		return
	}
	e := p.encs[imaging]
	at := e.start.Add(r.dur(30*time.Minute, 90*time.Minute))
	issued := p.clamp(at.Add(r.dur(time.Hour, 10*time.Hour)))
	conclusion := "No acute cardiopulmonary process."
	switch {
	case title != "XR Chest 2 Views":
		conclusion = "Mild medial compartment joint space narrowing. No fracture."
	case p.has["pneumonia"]:
		conclusion = "Right lower lobe airspace opacity consistent with pneumonia."
	case p.has["hf"]:
		conclusion = "Mild cardiomegaly with small bilateral pleural effusions."
	}
	text := strings.Join([]string{
		"EXAM: " + title,
		"DATE: " + at.Format(layoutDate),
		"PATIENT: " + p.fullName() + " (MRN " + p.mrn + ")",
		"COMPARISON: None.",
		"FINDINGS: See impression.",
		"IMPRESSION: " + conclusion,
		"Electronically signed by " + pick(r, clinicians) + ", radiology.",
	}, "\n")

	w := &p.w
	p.begin("DiagnosticReport", p.newID("dr", &p.n.dr), p.lastUpdated(issued))
	w.ks("status", "final")
	w.category("category", catDRRad)
	w.concept("code", title, drImaging)
	p.subject()
	w.kref("encounter", "Encounter", e.id)
	w.kt("effectiveDateTime", at)
	w.kt("issued", issued)
	w.ka("performer")
	w.open()
	w.ks("display", "Example General Hospital Radiology")
	w.close()
	w.closeArr()
	style := r.float()
	if style < 0.85 {
		w.ks("conclusion", conclusion)
	}
	if style > 0.15 {
		w.ka("presentedForm")
		w.open()
		w.ks("contentType", "text/plain")
		w.key("data")
		w.b64(text)
		w.ks("title", title+" report")
		w.close()
		w.closeArr()
	}
	p.end()
}

func (p *patientGen) labReport(d drawPlan, c code, text string, results []string) {
	if len(results) == 0 {
		return
	}
	w := &p.w
	p.begin("DiagnosticReport", p.newID("dr", &p.n.dr), p.lastUpdated(d.issued))
	w.ks("status", "final")
	w.category("category", catDRLab)
	w.concept("code", text, c)
	p.subject()
	p.encRef(d.enc)
	w.kt("effectiveDateTime", d.at)
	w.kt("issued", d.issued)
	w.ka("performer")
	w.open()
	w.ks("display", "Example General Hospital Laboratory")
	w.close()
	w.closeArr()
	w.ka("result")
	for _, id := range results {
		w.open()
		w.key("reference")
		w.str2("Observation/", id)
		w.close()
	}
	w.closeArr()
	p.end()
}

// --- DocumentReference ------------------------------------------------------------------

func (p *patientGen) emitDocuments() {
	r := p.r
	last := p.lastInPerson()
	sel := []int{last}
	for k := range p.encs {
		if k != last && len(sel) < 3 && !p.encs[k].inProgress && r.chance(0.25) {
			sel = append(sel, k)
		}
	}
	slices.Sort(sel)
	var problems []string
	for _, c := range p.conds {
		if c.abate.IsZero() && c.mode != 2 {
			problems = append(problems, c.def.icd.display+" ("+c.def.icd.code+")")
		}
	}
	if len(problems) == 0 {
		problems = []string{"No active problems."}
	}
	w := &p.w
	for _, k := range sel {
		e := p.encs[k]
		typ, title := docProgress, "Progress note"
		switch e.class {
		case classIMP:
			typ, title = docDischarg, "Discharge summary"
		case classEMER:
			typ, title = docSummary, "Emergency department summary"
		}
		at := e.end.Add(r.dur(10*time.Minute, 3*time.Hour))
		if e.inProgress || at.After(p.now) {
			at = p.now.Add(-time.Minute)
		}
		body := strings.ToUpper(title) + "\n" +
			"Patient: " + p.fullName() + "  DOB: " + p.birth.Format(layoutDate) + "  MRN: " + p.mrn + "\n" +
			"Date of service: " + e.start.Format(layoutDate) + "  Facility: " + e.facility + "\n" +
			"Clinician: " + e.clinician + "\n\n" +
			"Reason for visit: " + trimTag(e.typ.display) + ".\n" +
			"Assessment:\n- " + strings.Join(problems, "\n- ") + "\n" +
			"Plan: Continue current medications. Follow up in " + strconv.Itoa(r.between(1, 6)) + " months.\n"
		p.begin("DocumentReference", p.newID("doc", &p.n.doc), p.lastUpdated(at))
		w.ks("status", "current")
		w.ks("docStatus", "final")
		w.concept("type", title, typ)
		w.category("category", catClinNote)
		p.subject()
		w.kt("date", at)
		w.ka("author")
		w.open()
		w.ks("display", e.clinician)
		w.close()
		w.closeArr()
		w.ka("content")
		w.open()
		w.ko("attachment")
		w.ks("contentType", "text/plain")
		w.key("data")
		w.b64(body)
		w.ks("title", title)
		w.kt("creation", at)
		w.close()
		w.close()
		w.closeArr()
		w.ko("context")
		w.ka("encounter")
		w.open()
		w.key("reference")
		w.str2("Encounter/", e.id)
		w.close()
		w.closeArr()
		if e.inProgress {
			w.period("period", e.start, time.Time{})
		} else {
			w.period("period", e.start, e.end)
		}
		w.close()
		p.end()
	}
}
