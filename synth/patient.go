package synth

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	day  = 24 * time.Hour
	year = 8766 * time.Hour // 365.25 days
)

// span locates one resource in the patient's output buffer.
type span struct {
	typ        string
	start, end int
}

// encPlan is a planned Encounter.
type encPlan struct {
	id         string
	class      code
	typ        code
	cpt        code
	start, end time.Time
	inProgress bool
	facility   string
	clinician  string
	draw       int    // index into draws, or -1
	dx         string // key of the acute problem diagnosed here, if any
}

func (e *encPlan) inPerson() bool { return e.class != classVR }

// condPlan is a planned Condition.
type condPlan struct {
	id       string
	def      condDef
	mode     int // 0 ICD-10-CM and SNOMED CT, 1 ICD-10-CM only, 2 SNOMED CT only
	cat      code
	ver      code
	onset    time.Time
	abate    time.Time // zero when active
	recorded time.Time
	enc      int // encounter index or -1
}

// drawPlan is one blood draw with the ids of the panel results.
type drawPlan struct {
	enc             int
	at, issued      time.Time
	bmp, cbc, lipid []string
}

// patientGen builds one patient. It is used once and thrown away.
type patientGen struct {
	r   *rng
	now time.Time
	idx int
	pid string

	w     jw
	spans []span
	n     struct{ enc, cond, obs, med, alg, imm, proc, dr, doc int }

	female      bool
	birth       time.Time
	age         int
	given       []string
	family      string
	mrn         string
	impTemp     bool
	impWeight   bool
	localLabs   float64
	adultHeight float64
	bmi         float64
	sysBase     float64
	diaBase     float64

	has        map[string]bool
	conds      []condPlan
	encs       []encPlan
	draws      []drawPlan
	allergy    []allergyDef
	penicillin bool
	procs      []procPlan
}

// procPlan is a planned Procedure.
type procPlan struct {
	def procDef
	enc int
}

func newPatientGen(seed int64, now time.Time, i int) *patientGen {
	return &patientGen{
		r:   newRNG(seed, now, i),
		now: now,
		idx: i,
		pid: patientID(i),
		has: make(map[string]bool, 8),
	}
}

func (p *patientGen) generate() []Resource {
	p.w.b = make([]byte, 0, 64<<10)
	p.demographics()
	p.planEncounters()
	p.planConditions()
	p.planDraws()
	p.planAllergies()
	p.planProcedures()

	p.emitPatient()
	p.emitEncounters()
	p.emitConditions()
	p.emitObservations()
	p.emitMedications()
	p.emitAllergies()
	p.emitImmunizations()
	p.emitProcedures()
	p.emitReports()
	p.emitDocuments()

	out := make([]Resource, len(p.spans))
	b := p.w.b
	for k, s := range p.spans {
		out[k] = Resource{Type: s.typ, JSON: b[s.start:s.end:s.end]}
	}
	return out
}

// --- helpers ---------------------------------------------------------------

func (p *patientGen) clamp(t time.Time) time.Time {
	if t.After(p.now) {
		return p.now
	}
	return t
}

// lastUpdated is a little after the event, never after Now.
func (p *patientGen) lastUpdated(t time.Time) time.Time {
	return p.clamp(t.Add(p.r.dur(5*time.Minute, 36*time.Hour))).Truncate(time.Second)
}

func (p *patientGen) ageAt(t time.Time) float64 { return t.Sub(p.birth).Hours() / year.Hours() }

func (p *patientGen) newID(tag string, n *int) string {
	*n++
	s := strconv.Itoa(*n)
	if len(s) < 3 {
		s = "000"[len(s):] + s
	}
	return p.pid + "-" + tag + "-" + s
}

// begin starts a resource; end must follow.
func (p *patientGen) begin(typ, id string, lastUpdated time.Time) {
	p.w.comma = false
	p.spans = append(p.spans, span{typ: typ, start: len(p.w.b)})
	p.w.begin(typ, id, lastUpdated)
}

func (p *patientGen) end() {
	p.w.close()
	p.spans[len(p.spans)-1].end = len(p.w.b)
}

func (p *patientGen) subject() { p.w.kref("subject", "Patient", p.pid) }
func (p *patientGen) encRef(e int) {
	if e >= 0 {
		p.w.kref("encounter", "Encounter", p.encs[e].id)
	}
}

// encAfter returns the index of a random finished encounter at or after t,
// or -1.
func (p *patientGen) encAfter(t time.Time) int {
	var c []int
	for k := range p.encs {
		if !p.encs[k].start.Before(t) && !p.encs[k].inProgress {
			c = append(c, k)
		}
	}
	if len(c) == 0 {
		return -1
	}
	return pick(p.r, c)
}

func (p *patientGen) lastInPerson() int {
	for k := len(p.encs) - 1; k >= 0; k-- {
		if p.encs[k].inPerson() && !p.encs[k].inProgress {
			return k
		}
	}
	return 0
}

func round(v float64, prec int) float64 {
	m := 1.0
	for range prec {
		m *= 10
	}
	if v < 0 {
		return float64(int64(v*m-0.5)) / m
	}
	return float64(int64(v*m+0.5)) / m
}

// --- demographics ------------------------------------------------------------

func (p *patientGen) demographics() {
	r := p.r
	p.female = r.chance(0.51)
	switch p.idx {
	case IndexDemo:
		p.age = r.between(58, 68)
	case IndexManyMeds:
		p.age = r.between(74, 86)
	case IndexNoRecentLabs:
		p.age = r.between(45, 70)
	default:
		if r.chance(0.17) {
			p.age = r.intn(18)
		} else {
			p.age = r.between(18, 95)
		}
	}
	days := r.intn(365)
	if p.age == 0 && days < 20 {
		days += 20
	}
	d := p.now.AddDate(-p.age, 0, -days)
	p.birth = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)

	if p.female {
		p.given = append(p.given, pick(r, givenFemale))
		if p.age >= 16 && r.chance(0.4) {
			p.given = append(p.given, pick(r, givenFemale))
		}
	} else {
		p.given = append(p.given, pick(r, givenMale))
		if p.age >= 16 && r.chance(0.4) {
			p.given = append(p.given, pick(r, givenMale))
		}
	}
	p.family = pick(r, familyNames)
	p.mrn = strconv.Itoa(30000000 + p.idx*13 + int(r.intn(13)))

	p.impTemp = r.chance(0.3)
	p.impWeight = r.chance(0.3)
	p.localLabs = 0.06
	if r.chance(0.2) {
		p.localLabs = 0.5
	}
	if p.female {
		p.adultHeight = r.fbetween(152, 176)
	} else {
		p.adultHeight = r.fbetween(164, 192)
	}
}

func (p *patientGen) heightAt(t time.Time) float64 {
	a := p.ageAt(t)
	switch {
	case a < 1:
		return 50 + 25*a
	case a < 13:
		return 75 + (p.adultHeight-75)*0.72*(a-1)/12
	case a < 18:
		lo := 75 + (p.adultHeight-75)*0.72
		return lo + (p.adultHeight-lo)*(a-13)/5
	}
	return p.adultHeight
}

// --- encounters --------------------------------------------------------------

func (p *patientGen) planEncounters() {
	r := p.r
	start := p.now.Add(-5 * year)
	if b := p.birth.Add(day); b.After(start) {
		start = b
	}
	stop := p.now.Add(-2 * time.Hour)
	n := r.between(3, 9)
	switch p.idx {
	case IndexDemo:
		n = 7
	case IndexManyMeds:
		n = 8
	}
	span := stop.Sub(start)
	times := make([]time.Time, n)
	for k := range times {
		times[k] = start.Add(time.Duration(r.float() * float64(span)))
	}
	if p.idx == IndexNoRecentLabs {
		times[0] = p.now.Add(-3*year - r.dur(0, 300*day))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })

	for k, t := range times {
		e := encPlan{draw: -1, facility: pick(r, facilities), clinician: pick(r, clinicians)}
		cls := classAMB
		if k > 0 {
			cls = pickWeighted(r, []weighted[code]{{0.55, classAMB}, {0.15, classVR}, {0.18, classEMER}, {0.12, classIMP}})
		}
		e.class = cls
		var d time.Duration
		switch cls {
		case classAMB:
			e.typ = pickWeighted(r, []weighted[code]{{0.5, encCheckUp}, {0.3, encSymptom}, {0.2, encFollowUp}})
			if k == 0 {
				e.typ = encCheckUp
			}
			if r.chance(0.4) {
				e.cpt = pick(r, []code{encCPTEst, encCPTEstMod})
			}
			d = r.dur(20*time.Minute, 60*time.Minute)
		case classVR:
			e.typ = encTele
			d = r.dur(15*time.Minute, 30*time.Minute)
		case classEMER:
			e.typ = encER
			e.facility = facilities[0]
			d = r.dur(2*time.Hour, 8*time.Hour)
		default:
			e.typ = encAdmit
			e.facility = facilities[0]
			d = r.dur(48*time.Hour, 144*time.Hour)
		}
		// Business hours for planned visits.
		s := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		if cls == classAMB || cls == classVR {
			s = s.Add(time.Duration(r.between(13, 22))*time.Hour + time.Duration(r.intn(4))*15*time.Minute)
		} else {
			s = s.Add(time.Duration(r.intn(24*60)) * time.Minute)
		}
		if s.Before(p.birth) {
			s = p.birth.Add(6 * time.Hour)
		}
		if lim := p.now.Add(-30 * time.Minute); s.Add(d).After(lim) {
			s = lim.Add(-d)
		}
		e.start, e.end = s, s.Add(d)
		p.encs = append(p.encs, e)
	}
	// Some patients are in the emergency department or on a ward right now.
	if p.idx != IndexDemo && p.idx != IndexNoRecentLabs && r.chance(0.08) {
		e := &p.encs[len(p.encs)-1]
		if r.chance(0.5) {
			e.class, e.typ = classEMER, encER
		} else {
			e.class, e.typ = classIMP, encAdmit
		}
		e.cpt = code{}
		e.facility = facilities[0]
		e.inProgress = true
		e.start = p.now.Add(-r.dur(time.Hour, 36*time.Hour)).Truncate(time.Minute)
		e.end = time.Time{}
	}
	slices.SortStableFunc(p.encs, func(a, b encPlan) int { return a.start.Compare(b.start) })
	for k := range p.encs {
		p.encs[k].id = p.newID("enc", &p.n.enc)
	}
}

// --- conditions --------------------------------------------------------------

func (p *patientGen) planConditions() {
	if p.idx == IndexNoConditions {
		return
	}
	r := p.r
	var chosen []condDef
	switch p.idx {
	case IndexDemo:
		chosen = []condDef{cHTN, cDM2, cHLD, cObesity}
	case IndexManyMeds:
		chosen = []condDef{cHTN, cDM2, cHLD, cHF, cAF, cCKD, cHypoT}
	}
	for _, c := range chronicConds {
		if len(chosen) >= 6 {
			break
		}
		if p.age < c.minAge || slices.ContainsFunc(chosen, func(x condDef) bool { return x.key == c.key }) {
			continue
		}
		prev := c.prev
		switch c.key {
		case "htn", "hld", "dm2", "ckd", "hf", "af", "oaknee":
			switch {
			case p.age >= 65:
				prev *= 1.8
			case p.age < 40:
				prev *= 0.35
			}
		case "predm":
			if slices.ContainsFunc(chosen, func(x condDef) bool { return x.key == "dm2" }) {
				continue
			}
		}
		if r.chance(prev) {
			chosen = append(chosen, c)
		}
	}
	for _, c := range chosen {
		p.has[c.key] = true
		cp := condPlan{def: c, cat: catProblem, ver: verConfirmed, enc: -1, mode: p.codingMode()}
		earliest := p.birth.AddDate(max(c.minAge, 1), 0, 0)
		back := time.Duration(r.fbetween(0.5, 15) * float64(year))
		if lim := time.Duration(float64(p.now.Sub(earliest)) * 0.95); back > lim {
			back = lim
		}
		cp.onset = p.now.Add(-back).Truncate(time.Hour)
		cp.recorded = p.clamp(cp.onset.Add(r.dur(0, 60*day)))
		if r.chance(0.05) {
			cp.ver = verProvision
		}
		if (c.key == "dep" || c.key == "anemia" || c.key == "vitd") && r.chance(0.25) {
			if a := cp.onset.Add(r.dur(180*day, 730*day)); a.Before(p.now) {
				cp.abate = a
			}
		}
		p.conds = append(p.conds, cp)
	}
	// The same problem recorded twice: once ICD-10-CM only on the problem
	// list, once SNOMED CT only as an encounter diagnosis.
	if len(p.conds) > 0 && (p.idx == IndexDemo || r.chance(0.25)) {
		orig := &p.conds[0]
		orig.mode = 1
		dup := *orig
		dup.mode = 2
		dup.cat = catEncDx
		dup.enc = p.encAfter(orig.onset)
		if dup.enc < 0 {
			dup.enc = 0
		}
		dup.recorded = p.encs[dup.enc].start
		p.conds = append(p.conds, dup)
	}
	// Acute problems diagnosed at visits, most of them resolved.
	acute := 0
	for k := range p.encs {
		e := &p.encs[k]
		if acute >= 3 || e.typ == encCheckUp || e.typ == encFollowUp || !r.chance(0.55) {
			continue
		}
		p.addAcute(k)
		acute++
	}
	for k := 1; len(p.conds) < 2 && k < len(p.encs); k++ {
		p.addAcute(k)
	}
	for k := range p.conds {
		p.conds[k].id = p.newID("cond", &p.n.cond)
	}
}

func (p *patientGen) codingMode() int {
	switch f := p.r.float(); {
	case f < 0.7:
		return 0
	case f < 0.85:
		return 1
	default:
		return 2
	}
}

func (p *patientGen) addAcute(k int) {
	r := p.r
	e := &p.encs[k]
	a := p.ageAt(e.start)
	var opts []condDef
	for _, c := range acuteConds {
		if a >= float64(c.minAge) {
			opts = append(opts, c)
		}
	}
	if a < 8 {
		opts = append(opts, cOtitis, cURI)
	}
	c := pick(r, opts)
	if e.class == classIMP && r.chance(0.6) {
		c = cPneumonia
	}
	cp := condPlan{def: c, cat: catEncDx, ver: verConfirmed, enc: k, mode: p.codingMode()}
	cp.onset = e.start.Add(-r.dur(day, 5*day))
	if cp.onset.Before(p.birth) {
		cp.onset = p.birth
	}
	cp.recorded = e.start.Add(20 * time.Minute)
	if ab := e.start.Add(r.dur(7*day, 21*day)); !e.inProgress && ab.Before(p.now) {
		cp.abate = ab
	}
	p.has[c.key] = true
	e.dx = c.key
	p.conds = append(p.conds, cp)
}

// --- lab draws ---------------------------------------------------------------

func (p *patientGen) planDraws() {
	r := p.r
	var cand []int
	cutoff := p.now.Add(-2*year - day)
	for k, e := range p.encs {
		if !e.inPerson() || e.inProgress {
			continue
		}
		if p.idx == IndexNoRecentLabs && !e.start.Before(cutoff) {
			continue
		}
		cand = append(cand, k)
	}
	want := pickWeighted(r, []weighted[int]{{0.5, 1}, {0.35, 2}, {0.15, 3}})
	if p.idx == IndexDemo {
		want = 3
	}
	var sel []int
	if len(cand) > 0 {
		sel = append(sel, cand[len(cand)-1]) // most recent visit almost always has labs
		rest := cand[:len(cand)-1]
		for len(sel) < want && len(rest) > 0 {
			j := r.intn(len(rest))
			sel = append(sel, rest[j])
			rest = append(rest[:j:j], rest[j+1:]...)
		}
	}
	slices.Sort(sel)
	for _, k := range sel {
		at := p.encs[k].start.Add(r.dur(10*time.Minute, 40*time.Minute))
		p.encs[k].draw = len(p.draws)
		p.draws = append(p.draws, drawPlan{enc: k, at: at, issued: p.clamp(at.Add(r.dur(2*time.Hour, 20*time.Hour)))})
	}
}

// --- allergies and procedures --------------------------------------------------

func (p *patientGen) planAllergies() {
	r := p.r
	n := 0
	switch f := r.float(); {
	case p.idx == IndexDemo:
		p.allergy = []allergyDef{allergies[0], allergies[2]}
	case f < 0.38:
	case f < 0.78:
		n = 1
	case f < 0.94:
		n = 2
	default:
		n = 3
	}
	for len(p.allergy) < n {
		a := pick(r, allergies)
		if !slices.ContainsFunc(p.allergy, func(x allergyDef) bool { return x.text == a.text }) {
			p.allergy = append(p.allergy, a)
		}
	}
	if p.idx == IndexTextAllergy {
		p.allergy = append(p.allergy, textOnlyAllergy)
	}
	for _, a := range p.allergy {
		if strings.HasPrefix(a.text, "Penicillin") {
			p.penicillin = true
		}
	}
}

func (p *patientGen) planProcedures() {
	r := p.r
	last := p.lastInPerson()
	add := func(d procDef, enc int) {
		if len(p.procs) < 4 {
			p.procs = append(p.procs, procPlan{d, enc})
		}
	}
	for k, e := range p.encs {
		if e.inProgress {
			continue
		}
		if e.class == classIMP {
			if r.chance(0.8) {
				add(pMedRec, k)
			}
			if r.chance(0.15) {
				add(pAppendect, k)
			}
		}
		if (e.class == classEMER || e.class == classIMP) && (p.has["pneumonia"] || p.has["covid"] || r.chance(0.3)) {
			add(pChestXR, k)
		}
	}
	if p.has["pharyng"] {
		for _, c := range p.conds {
			if c.def.key == "pharyng" && c.enc >= 0 && p.encs[c.enc].inPerson() {
				add(pThroatCult, c.enc)
				break
			}
		}
	}
	if (p.has["htn"] || p.has["af"] || p.has["hf"]) && r.chance(0.5) {
		add(pECG, last)
	}
	if (p.has["asthma"] || p.has["copd"]) && r.chance(0.7) {
		add(pSpirometry, last)
	}
	if p.age >= 45 && r.chance(0.35) {
		add(pColonoscopy, p.r.intn(len(p.encs)))
	}
	if p.female && p.age >= 40 && r.chance(0.45) {
		add(pMammo, last)
	}
	if p.age >= 12 && r.chance(0.35) {
		add(pDepScreen, last)
	}
	if len(p.draws) > 0 && r.chance(0.3) {
		add(pVenipunct, p.draws[len(p.draws)-1].enc)
	}
	if p.idx == IndexDemo {
		add(pECG, last)
	}
	// A colonoscopy picked at an in-progress or virtual visit moves to the
	// first visit, which is always an in-person check-up.
	for k := range p.procs {
		e := p.encs[p.procs[k].enc]
		if e.inProgress || !e.inPerson() {
			p.procs[k].enc = 0
		}
	}
	slices.SortStableFunc(p.procs, func(a, b procPlan) int { return a.enc - b.enc })
}
