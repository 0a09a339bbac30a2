package synth

import (
	"strconv"
	"strings"
	"time"

	"ehrgate/fhir"
)

// trimTag drops a SNOMED CT semantic tag such as " (disorder)".
func trimTag(s string) string {
	if i := strings.LastIndex(s, " ("); i > 0 && strings.HasSuffix(s, ")") {
		return s[:i]
	}
	return s
}

func (p *patientGen) fullName() string { return strings.Join(p.given, " ") + " " + p.family }

// --- Patient -----------------------------------------------------------------

func (p *patientGen) emitPatient() {
	r, w := p.r, &p.w
	p.begin("Patient", p.pid, p.lastUpdated(p.encs[len(p.encs)-1].start))

	races := pickWeighted(r, []weighted[[]code]{
		{0.62, []code{raceWhite}}, {0.13, []code{raceBlack}}, {0.08, []code{raceAsian}},
		{0.02, []code{raceAIAN}}, {0.01, []code{raceNHPI}}, {0.03, []code{raceWhite, raceBlack}},
		{0.02, []code{raceWhite, raceAsian}}, {0.04, []code{raceASKU}},
	})
	hispanic := r.chance(0.18)
	lang := langEn
	switch {
	case hispanic:
		if r.chance(0.55) {
			lang = langEs
		}
	case races[0] == raceAsian:
		lang = pickWeighted(r, []weighted[code]{{0.3, langEn}, {0.3, langZh}, {0.2, langVi}, {0.1, langKo}, {0.1, langTl}})
	default:
		lang = pickWeighted(r, []weighted[code]{{0.93, langEn}, {0.03, langRu}, {0.02, langAr}, {0.02, langFr}})
	}

	w.ka("extension")
	w.open()
	w.ks("url", fhir.ExtUSCoreRace)
	w.ka("extension")
	texts := make([]string, 0, 2)
	for _, c := range races {
		w.open()
		w.ks("url", "ombCategory")
		w.key("valueCoding")
		w.coding(c)
		w.close()
		texts = append(texts, c.display)
	}
	w.open()
	w.ks("url", "text")
	w.ks("valueString", strings.Join(texts, ", "))
	w.close()
	w.closeArr()
	w.close()
	eth := ethNot
	if hispanic {
		eth = ethHisp
	}
	w.open()
	w.ks("url", fhir.ExtUSCoreEthnicity)
	w.ka("extension")
	w.open()
	w.ks("url", "ombCategory")
	w.key("valueCoding")
	w.coding(eth)
	w.close()
	w.open()
	w.ks("url", "text")
	w.ks("valueString", eth.display)
	w.close()
	w.closeArr()
	w.close()
	w.open()
	w.ks("url", fhir.ExtUSCoreBirthSex)
	if p.female {
		w.ks("valueCode", "F")
	} else {
		w.ks("valueCode", "M")
	}
	w.close()
	w.closeArr()

	w.ka("identifier")
	w.open()
	w.ks("use", "usual")
	w.concept("type", "MRN", mrType)
	w.ks("system", systemMRN)
	w.ks("value", p.mrn)
	w.close()
	w.closeArr()
	w.kb("active", true)

	w.ka("name")
	w.open()
	w.ks("use", "official")
	w.ks("text", p.fullName())
	w.ks("family", p.family)
	w.kstrs("given", p.given...)
	w.close()
	w.closeArr()

	city := pick(r, cities)
	w.ka("telecom")
	w.open()
	w.ks("system", "phone")
	w.ks("value", "("+city.area+") 555-01"+strconv.Itoa(10+r.intn(90)))
	w.ks("use", pick(r, []string{"home", "mobile", "mobile"}))
	w.close()
	if p.age >= 18 && r.chance(0.55) {
		w.open()
		w.ks("system", "email")
		w.ks("value", emailLocal(p.given[0])+"."+emailLocal(p.family)+strconv.Itoa(r.intn(100))+"@example.com")
		w.ks("use", "home")
		w.close()
	}
	w.closeArr()
	if p.female {
		w.ks("gender", "female")
	} else {
		w.ks("gender", "male")
	}
	w.kd("birthDate", p.birth)

	w.ka("address")
	w.open()
	w.ks("use", "home")
	w.ka("line")
	w.str(strconv.Itoa(r.between(10, 9899)) + " " + pick(r, streetNames) + " " + pick(r, streetKinds))
	if r.chance(0.2) {
		w.str("Apt " + strconv.Itoa(r.between(1, 40)) + string(rune('A'+r.intn(4))))
	}
	w.closeArr()
	w.ks("city", city.city)
	w.ks("state", city.state)
	w.ks("postalCode", city.zip)
	w.ks("country", "US")
	w.close()
	w.closeArr()

	w.ka("communication")
	w.open()
	w.concept("language", lang.display, lang)
	w.kb("preferred", true)
	w.close()
	w.closeArr()
	p.end()
}

func emailLocal(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// --- Encounter ---------------------------------------------------------------

func (p *patientGen) emitEncounters() {
	w := &p.w
	for _, e := range p.encs {
		t := e.end
		if e.inProgress {
			t = e.start
		}
		p.begin("Encounter", e.id, p.lastUpdated(t))
		if e.inProgress {
			w.ks("status", "in-progress")
		} else {
			w.ks("status", "finished")
		}
		w.key("class")
		w.coding(e.class)
		w.ka("type")
		if e.cpt.code != "" {
			w.conceptV(trimTag(e.typ.display), e.typ, e.cpt)
		} else {
			w.conceptV(trimTag(e.typ.display), e.typ)
		}
		w.closeArr()
		p.subject()
		w.ka("participant")
		w.open()
		w.refDisplay("individual", e.clinician)
		w.close()
		w.closeArr()
		if e.inProgress {
			w.period("period", e.start, time.Time{})
		} else {
			w.period("period", e.start, e.end)
		}
		w.refDisplay("serviceProvider", e.facility)
		p.end()
	}
}

// --- Condition ---------------------------------------------------------------

func (p *patientGen) emitConditions() {
	w := &p.w
	for _, c := range p.conds {
		p.begin("Condition", c.id, p.lastUpdated(c.recorded))
		if c.abate.IsZero() {
			w.concept("clinicalStatus", "", condActive)
		} else {
			w.concept("clinicalStatus", "", condResolved)
		}
		w.concept("verificationStatus", "", c.ver)
		w.category("category", c.cat)
		switch c.mode {
		case 1:
			w.concept("code", c.def.icd.display, c.def.icd)
		case 2:
			w.concept("code", trimTag(c.def.sct.display), c.def.sct)
		default:
			w.concept("code", c.def.icd.display, c.def.icd, c.def.sct)
		}
		p.subject()
		p.encRef(c.enc)
		w.kt("onsetDateTime", c.onset)
		if !c.abate.IsZero() {
			w.kt("abatementDateTime", c.abate)
		}
		w.kt("recordedDate", c.recorded)
		p.end()
	}
}

// --- Observation -------------------------------------------------------------

func (p *patientGen) obsHead(id string, lu time.Time, cat code, text string, enc int, eff time.Time, codes ...code) {
	w := &p.w
	p.begin("Observation", id, lu)
	w.ks("status", "final")
	w.category("category", cat)
	w.concept("code", text, codes...)
	p.subject()
	p.encRef(enc)
	w.kt("effectiveDateTime", eff)
}

func (p *patientGen) vital(enc int, t time.Time, text string, v float64, prec int, u unit, codes ...code) {
	p.obsHead(p.newID("obs", &p.n.obs), p.lastUpdated(t), catVital, text, enc, t, codes...)
	p.w.quantity("valueQuantity", round(v, prec), prec, u)
	p.end()
}

func (p *patientGen) emitObservations() {
	r := p.r
	switch {
	case p.has["obesity"] && p.age >= 18:
		p.bmi = r.fbetween(30.5, 40)
	case p.has["obesity"]:
		p.bmi = r.fbetween(22, 27)
	case p.age >= 18:
		p.bmi = r.fbetween(19, 29.5)
	default:
		p.bmi = r.fbetween(15.5, 19.5)
	}
	if p.has["htn"] {
		p.sysBase, p.diaBase = r.fbetween(136, 156), r.fbetween(84, 95)
	} else {
		p.sysBase, p.diaBase = r.fbetween(106, 127), r.fbetween(64, 80)
	}
	for k := range p.encs {
		p.vitals(k)
		if d := p.encs[k].draw; d >= 0 {
			p.labs(&p.draws[d])
		}
	}
	last := p.lastInPerson()
	t := p.encs[last].start.Add(12 * time.Minute)
	if p.age >= 13 {
		v := pickWeighted(r, smokingValues)
		if p.age < 18 {
			v = smokingValues[0].v
		}
		p.obsHead(p.newID("obs", &p.n.obs), p.lastUpdated(t), catSocial, "Tobacco smoking status", last, t,
			lSmoking)
		p.w.concept("valueCodeableConcept", trimTag(v.display), v)
		p.end()
	}
	if p.age >= 18 && (p.idx == IndexDemo || r.chance(0.4)) {
		text := "Exercises at least 150 minutes per week"
		if p.age >= 65 {
			text = "Fall in the past 12 months"
		}
		p.obsHead(p.newID("obs", &p.n.obs), p.lastUpdated(t), catSurvey, text, last, t)
		p.w.kb("valueBoolean", r.chance(0.35))
		p.end()
	}
}

var (
	lBP      = loinc("85354-9", "Blood pressure panel with all children optional")
	lSys     = loinc("8480-6", "Systolic blood pressure")
	lDia     = loinc("8462-4", "Diastolic blood pressure")
	lHR      = loinc("8867-4", "Heart rate")
	lRR      = loinc("9279-1", "Respiratory rate")
	lTemp    = loinc("8310-5", "Body temperature")
	lWeight  = loinc("29463-7", "Body weight")
	lHeight  = loinc("8302-2", "Body height")
	lBMI     = loinc("39156-5", "Body mass index (BMI) [Ratio]")
	lSpO2    = loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")
	lSaO2    = loinc("2708-6", "Oxygen saturation in Arterial blood")
	lSmoking = loinc("72166-2", "Tobacco smoking status")
)

func (p *patientGen) vitals(k int) {
	r, w := p.r, &p.w
	e := &p.encs[k]
	t := e.start.Add(r.dur(5*time.Minute, 15*time.Minute))
	a := p.ageAt(t)

	bp := func() {
		sys, dia := p.sysBase+r.fbetween(-8, 8), p.diaBase+r.fbetween(-6, 6)
		if a < 13 {
			sys, dia = r.fbetween(90, 112), r.fbetween(52, 70)
		}
		p.obsHead(p.newID("obs", &p.n.obs), p.lastUpdated(t), catVital, "Blood pressure", k, t, lBP)
		w.ka("component")
		w.open()
		w.concept("code", "Systolic blood pressure", lSys)
		w.quantity("valueQuantity", round(sys, 0), 0, uMmHg)
		w.close()
		w.open()
		w.concept("code", "Diastolic blood pressure", lDia)
		w.quantity("valueQuantity", round(dia, 0), 0, uMmHg)
		w.close()
		w.closeArr()
		p.end()
	}
	if !e.inPerson() {
		if a >= 13 && r.chance(0.4) {
			bp()
		}
		return
	}
	if a >= 3 {
		bp()
	}
	var hr, rr float64
	switch {
	case a < 1:
		hr, rr = r.fbetween(110, 150), r.fbetween(30, 45)
	case a < 6:
		hr, rr = r.fbetween(90, 125), r.fbetween(22, 30)
	case a < 13:
		hr, rr = r.fbetween(75, 105), r.fbetween(18, 24)
	default:
		hr, rr = r.fbetween(58, 96), r.fbetween(12, 20)
	}
	p.vital(k, t, "Heart rate", hr, 0, uPerMin, lHR)
	p.vital(k, t, "Respiratory rate", rr, 0, uPerMin, lRR)
	temp := r.fbetween(36.4, 37.3)
	if (e.class == classEMER || e.class == classIMP) && r.chance(0.35) {
		temp = r.fbetween(38.1, 39.4)
	}
	if p.impTemp != r.chance(0.1) {
		p.vital(k, t, "Body temperature", temp*9/5+32, 1, uDegF, lTemp)
	} else {
		p.vital(k, t, "Body temperature", temp, 1, uCel, lTemp)
	}
	spo2 := r.fbetween(95, 100.4)
	if p.has["copd"] || p.has["hf"] || e.dx == "pneumonia" || e.dx == "covid" {
		spo2 = r.fbetween(89, 96)
	}
	p.vital(k, t, "Oxygen saturation", spo2, 0, uPct, lSpO2, lSaO2)

	h := p.heightAt(t) + r.fbetween(-0.6, 0.6)
	bmi := p.bmi + r.fbetween(-0.8, 0.8)
	if a < 2 {
		bmi = r.fbetween(15.5, 18)
	}
	kg := bmi * (h / 100) * (h / 100)
	if p.impWeight != r.chance(0.1) {
		p.vital(k, t, "Body weight", kg*2.20462, 1, uLb, lWeight)
	} else {
		p.vital(k, t, "Body weight", kg, 1, uKg, lWeight)
	}
	if k == 0 || a < 18 || e.typ == encCheckUp || e.class == classIMP {
		if p.impWeight {
			p.vital(k, t, "Body height", h/2.54, 1, uIn, lHeight)
		} else {
			p.vital(k, t, "Body height", h, 1, uCm, lHeight)
		}
		if a >= 2 {
			p.vital(k, t, "BMI", kg/((h/100)*(h/100)), 1, uBMI, lBMI)
		}
	}
}

// labDef is a laboratory test with its reference range.
type labDef struct {
	loinc, local    code
	text            string
	u               unit
	prec            int
	low, high       float64
	hasLow, hasHigh bool
}

func lab(lc, ld string, local code, text string, u unit, prec int, low, high float64) labDef {
	return labDef{loinc(lc, ld), local, text, u, prec, low, high, low > 0, high > 0}
}

func localLab(c, d string) code { return code{systemLocalLab, c, d} }

// Laboratory tests: LOINC codes from loinc.org (top 2000 lab codes); ranges
// are typical adult reference intervals.
var (
	labGlucose   = lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", localLab("GLU-S", "Glucose, serum"), "Glucose", uMgDL, 0, 70, 99)
	labGlucoseMM = lab("15074-8", "Glucose [Moles/volume] in Blood", code{}, "Glucose", uMmolL, 1, 3.9, 5.5)
	labBUN       = lab("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", localLab("BUN-S", "Urea nitrogen, serum"), "BUN", uMgDL, 0, 7, 20)
	labCreat     = lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", localLab("CREAT-S", "Creatinine, serum"), "Creatinine", uMgDL, 2, 0.6, 1.3)
	labSodium    = lab("2951-2", "Sodium [Moles/volume] in Serum or Plasma", localLab("NA-S", "Sodium, serum"), "Sodium", uMmolL, 0, 136, 145)
	labPotassium = lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", localLab("K-S", "Potassium, serum"), "Potassium", uMmolL, 1, 3.5, 5.1)
	labChloride  = lab("2075-0", "Chloride [Moles/volume] in Serum or Plasma", localLab("CL-S", "Chloride, serum"), "Chloride", uMmolL, 0, 98, 107)
	labHgbF      = lab("718-7", "Hemoglobin [Mass/volume] in Blood", localLab("HGB", "Hemoglobin"), "Hemoglobin", uGDL, 1, 12.0, 15.5)
	labHgbM      = lab("718-7", "Hemoglobin [Mass/volume] in Blood", localLab("HGB", "Hemoglobin"), "Hemoglobin", uGDL, 1, 13.5, 17.5)
	labHctF      = lab("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", localLab("HCT", "Hematocrit"), "Hematocrit", uPct, 1, 36, 46)
	labHctM      = lab("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", localLab("HCT", "Hematocrit"), "Hematocrit", uPct, 1, 41, 53)
	labWBC       = lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", localLab("WBC", "White blood cell count"), "WBC", uK_uL, 1, 4.5, 11.0)
	labPlt       = lab("777-3", "Platelets [#/volume] in Blood by Automated count", localLab("PLT", "Platelet count"), "Platelets", uK_uL, 0, 150, 450)
	labChol      = lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", localLab("CHOL", "Cholesterol, total"), "Cholesterol, total", uMgDL, 0, 0, 200)
	labLDLCalc   = lab("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", localLab("LDL-C", "LDL cholesterol, calculated"), "LDL cholesterol", uMgDL, 0, 0, 99)
	labLDLDirect = lab("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", code{}, "LDL cholesterol, direct", uMgDL, 0, 0, 99)
	labHDL       = lab("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", localLab("HDL", "HDL cholesterol"), "HDL cholesterol", uMgDL, 0, 40, 0)
	labTG        = lab("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", localLab("TRIG", "Triglycerides"), "Triglycerides", uMgDL, 0, 0, 150)
	labA1c       = lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", localLab("HBA1C", "Hemoglobin A1c"), "Hemoglobin A1c", uPct, 1, 4.0, 5.6)
	labTSH       = lab("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", localLab("TSH", "TSH, serum"), "TSH", uMIUL, 2, 0.4, 4.0)
	lUrineColor  = loinc("5778-6", "Color of Urine")
)

func (p *patientGen) labs(d *drawPlan) {
	r := p.r
	a := p.ageAt(d.at)
	emit := func(def labDef, v float64) string { return p.labObs(d, def, v) }
	if a >= 1 {
		g := r.fbetween(72, 104)
		switch {
		case p.has["dm2"]:
			g = r.fbetween(125, 260)
		case p.has["predm"]:
			g = r.fbetween(98, 125)
		}
		if r.chance(0.15) {
			d.bmp = append(d.bmp, emit(labGlucoseMM, g/18.016))
		} else {
			d.bmp = append(d.bmp, emit(labGlucose, g))
		}
		bun, cr := r.fbetween(8, 20), r.fbetween(0.7, 1.2)
		if p.female {
			cr = r.fbetween(0.55, 1.05)
		}
		if p.has["ckd"] {
			bun, cr = r.fbetween(22, 40), r.fbetween(1.4, 2.4)
		}
		if a < 13 {
			cr = r.fbetween(0.3, 0.6)
		}
		d.bmp = append(d.bmp, emit(labBUN, bun), emit(labCreat, cr))
		d.bmp = append(d.bmp, emit(labSodium, r.fbetween(134, 146)))
		k := r.fbetween(3.4, 5.2)
		if p.has["ckd"] {
			k = r.fbetween(4.4, 5.8)
		}
		d.bmp = append(d.bmp, emit(labPotassium, k), emit(labChloride, r.fbetween(96, 108)))
	}
	if a < 1 || p.idx == IndexDemo || r.chance(0.6) {
		hgbDef, hctDef := labHgbM, labHctM
		hgb := r.fbetween(13.0, 17.0)
		if p.female {
			hgbDef, hctDef = labHgbF, labHctF
			hgb = r.fbetween(11.6, 15.2)
		}
		if p.has["anemia"] || p.has["ckd"] {
			hgb = r.fbetween(9.0, 11.8)
		}
		d.cbc = append(d.cbc, emit(hgbDef, hgb), emit(hctDef, hgb*r.fbetween(2.9, 3.1)))
		wbc := r.fbetween(4.2, 10.5)
		if p.encs[d.enc].class == classEMER && r.chance(0.4) {
			wbc = r.fbetween(11.2, 16.5)
		}
		d.cbc = append(d.cbc, emit(labWBC, wbc), emit(labPlt, r.fbetween(140, 420)))
	}
	if a >= 18 && (p.has["hld"] || p.idx == IndexDemo || r.chance(0.35)) {
		ldl := r.fbetween(70, 135)
		if p.has["hld"] {
			ldl = r.fbetween(110, 190)
		}
		hdl, tg := r.fbetween(35, 75), r.fbetween(70, 240)
		d.lipid = append(d.lipid, emit(labChol, ldl+hdl+tg/5))
		if r.chance(0.2) {
			d.lipid = append(d.lipid, emit(labLDLDirect, ldl))
		} else {
			d.lipid = append(d.lipid, emit(labLDLCalc, ldl))
		}
		d.lipid = append(d.lipid, emit(labHDL, hdl), emit(labTG, tg))
	}
	if p.has["dm2"] || p.has["predm"] || (a >= 18 && r.chance(0.15)) {
		v := r.fbetween(4.6, 5.6)
		switch {
		case p.has["dm2"]:
			v = r.fbetween(6.6, 9.8)
		case p.has["predm"]:
			v = r.fbetween(5.7, 6.4)
		}
		emit(labA1c, v)
	}
	if p.has["hypot"] || r.chance(0.12) {
		v := r.fbetween(0.5, 3.8)
		if p.has["hypot"] {
			v = r.fbetween(2.0, 9.0)
		}
		emit(labTSH, v)
	}
	if a >= 2 && r.chance(0.15) {
		p.obsHead(p.newID("obs", &p.n.obs), p.lastUpdated(d.issued), catLab, "Color of Urine", d.enc, d.at, lUrineColor)
		p.w.kt("issued", d.issued)
		p.w.ks("valueString", pick(r, []string{"Yellow", "Straw", "Amber", "Dark yellow"}))
		p.end()
	}
}

// labObs writes one lab result and returns its id. Some results are coded
// with the hospital's local codes only and some carry only code.text.
func (p *patientGen) labObs(d *drawPlan, def labDef, v float64) string {
	r, w := p.r, &p.w
	id := p.newID("obs", &p.n.obs)
	lu := p.lastUpdated(d.issued)
	f := r.float()
	switch {
	case def.local.code != "" && f < p.localLabs:
		p.obsHead(id, lu, catLab, def.local.display, d.enc, d.at, def.local)
	case f > 0.96:
		p.obsHead(id, lu, catLab, def.text, d.enc, d.at)
	default:
		p.obsHead(id, lu, catLab, def.text, d.enc, d.at, def.loinc)
	}
	w.kt("issued", d.issued)
	v = round(v, def.prec)
	w.quantity("valueQuantity", v, def.prec, def.u)
	switch {
	case def.hasHigh && v > def.high:
		w.ka("interpretation")
		w.conceptV("High", interpHigh)
		w.closeArr()
	case def.hasLow && v < def.low:
		w.ka("interpretation")
		w.conceptV("Low", interpLow)
		w.closeArr()
	case r.chance(0.5):
		w.ka("interpretation")
		w.conceptV("Normal", interpNormal)
		w.closeArr()
	}
	w.ka("referenceRange")
	w.open()
	if def.hasLow {
		w.quantity("low", def.low, def.prec, def.u)
	}
	if def.hasHigh {
		w.quantity("high", def.high, def.prec, def.u)
	}
	w.close()
	w.closeArr()
	p.end()
	return id
}
