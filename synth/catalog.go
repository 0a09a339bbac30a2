package synth

import "ehrgate/fhir"

// This file holds the code tables the generator draws from. Every code is a
// real public code:
//
//   - LOINC (https://loinc.org): vital signs as bound by the US Core / FHIR
//     vital-signs profiles (http://hl7.org/fhir/R4/observation-vitalsigns.html),
//     common chemistry and hematology codes, panel and document codes.
//   - SNOMED CT (https://browser.ihtsdotools.org): problems, procedures,
//     allergens, reactions, smoking status values (US Core smoking status).
//   - ICD-10-CM (https://www.cms.gov/medicare/coding-billing/icd-10-codes),
//     FY2024 code set; CKD stage 3 uses N18.30 because N18.3 became a
//     non-billable header in FY2021.
//   - RxNorm SCD/SBD RXCUIs (https://mor.nlm.nih.gov/RxNav), mostly the ones
//     Synthea and the US Core examples use.
//   - NDC (FDA NDC directory), written as 11-digit 5-4-2 codes without
//     hyphens the way many EHR exports send them.
//   - CVX (https://www2.cdc.gov/vaccines/iis/iisstandards/vaccines.asp).
//   - CPT (AMA) for a few procedures and visit types.
//   - UCUM (https://ucum.org) for every quantity.
//   - OMB race and ethnicity (urn:oid:2.16.840.1.113883.6.238, CDC Race &
//     Ethnicity code set) as US Core requires.

const (
	systemUCUM       = fhir.SystemUCUM
	systemBCP47      = "urn:ietf:bcp:47"
	systemV20074     = "http://terminology.hl7.org/CodeSystem/v2-0074"
	systemAllergyVer = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	systemDocCat     = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
	systemNullFlavor = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
	systemLocalLab   = "http://hospital.example.org/lab-codes"
	systemMRN        = "http://hospital.example.org/mrn"
)

// code is a Coding: system, code and display.
type code struct{ sys, code, display string }

// unit is a UCUM unit with its human display.
type unit struct{ ucum, display string }

func loinc(c, d string) code  { return code{fhir.SystemLOINC, c, d} }
func sct(c, d string) code    { return code{fhir.SystemSNOMED, c, d} }
func icd(c, d string) code    { return code{fhir.SystemICD10CM, c, d} }
func rxnorm(c, d string) code { return code{fhir.SystemRxNorm, c, d} }
func ndc(c, d string) code    { return code{fhir.SystemNDC, c, d} }
func cvx(c, d string) code    { return code{fhir.SystemCVX, c, d} }
func cpt(c, d string) code    { return code{fhir.SystemCPT, c, d} }

var (
	uMmHg   = unit{"mm[Hg]", "mmHg"}
	uPerMin = unit{"/min", "/min"}
	uCel    = unit{"Cel", "C"}
	uDegF   = unit{"[degF]", "F"}
	uKg     = unit{"kg", "kg"}
	uLb     = unit{"[lb_av]", "lb"}
	uCm     = unit{"cm", "cm"}
	uIn     = unit{"[in_i]", "in"}
	uBMI    = unit{"kg/m2", "kg/m2"}
	uPct    = unit{"%", "%"}
	uMgDL   = unit{"mg/dL", "mg/dL"}
	uMmolL  = unit{"mmol/L", "mmol/L"}
	uGDL    = unit{"g/dL", "g/dL"}
	uK_uL   = unit{"10*3/uL", "10*3/uL"}
	uMIUL   = unit{"m[IU]/L", "mIU/L"}
)

// Category codings.
var (
	catVital     = code{fhir.SystemObsCat, "vital-signs", "Vital Signs"}
	catLab       = code{fhir.SystemObsCat, "laboratory", "Laboratory"}
	catSocial    = code{fhir.SystemObsCat, "social-history", "Social History"}
	catSurvey    = code{fhir.SystemObsCat, "survey", "Survey"}
	catProblem   = code{fhir.SystemCondCat, "problem-list-item", "Problem List Item"}
	catEncDx     = code{fhir.SystemCondCat, "encounter-diagnosis", "Encounter Diagnosis"}
	catDRLab     = code{systemV20074, "LAB", "Laboratory"}
	catDRRad     = code{systemV20074, "RAD", "Radiology"}
	catClinNote  = code{systemDocCat, "clinical-note", "Clinical Note"}
	mrType       = code{fhir.SystemV2_0203, "MR", "Medical Record Number"}
	interpHigh   = code{fhir.SystemInterp, "H", "High"}
	interpLow    = code{fhir.SystemInterp, "L", "Low"}
	interpNormal = code{fhir.SystemInterp, "N", "Normal"}
	condActive   = code{fhir.SystemCondClin, "active", "Active"}
	condResolved = code{fhir.SystemCondClin, "resolved", "Resolved"}
	verConfirmed = code{fhir.SystemCondVer, "confirmed", "Confirmed"}
	verProvision = code{fhir.SystemCondVer, "provisional", "Provisional"}
	algActive    = code{fhir.SystemAllergyC, "active", "Active"}
	algInactive  = code{fhir.SystemAllergyC, "inactive", "Inactive"}
	algConfirmed = code{systemAllergyVer, "confirmed", "Confirmed"}
	algUnconfirm = code{systemAllergyVer, "unconfirmed", "Unconfirmed"}
)

// Encounter classes (v3 ActCode) and types (SNOMED CT, CPT).
var (
	classAMB  = code{fhir.SystemActCode, "AMB", "ambulatory"}
	classEMER = code{fhir.SystemActCode, "EMER", "emergency"}
	classIMP  = code{fhir.SystemActCode, "IMP", "inpatient encounter"}
	classVR   = code{fhir.SystemActCode, "VR", "virtual"}

	encCheckUp   = sct("185349003", "Encounter for check up (procedure)")
	encSymptom   = sct("185345009", "Encounter for symptom (procedure)")
	encFollowUp  = sct("390906007", "Follow-up encounter (procedure)")
	encTele      = sct("448337001", "Telemedicine consultation with patient (procedure)")
	encER        = sct("50849002", "Emergency room admission (procedure)")
	encAdmit     = sct("32485007", "Hospital admission (procedure)")
	encCPTEst    = cpt("99213", "Office or other outpatient visit, established patient, low MDM")
	encCPTEstMod = cpt("99214", "Office or other outpatient visit, established patient, moderate MDM")
)

// condDef is a problem with its ICD-10-CM and SNOMED CT codings.
type condDef struct {
	key      string
	icd, sct code
	minAge   int
	prev     float64 // prevalence among eligible patients
	chronic  bool
}

// Conditions: ICD-10-CM codes with the matching SNOMED CT concept.
var (
	cHTN      = condDef{"htn", icd("I10", "Essential (primary) hypertension"), sct("38341003", "Hypertensive disorder, systemic arterial (disorder)"), 25, 0.32, true}
	cDM2      = condDef{"dm2", icd("E11.9", "Type 2 diabetes mellitus without complications"), sct("44054006", "Diabetes mellitus type 2 (disorder)"), 25, 0.13, true}
	cHLD      = condDef{"hld", icd("E78.5", "Hyperlipidemia, unspecified"), sct("55822004", "Hyperlipidemia (disorder)"), 25, 0.28, true}
	cAsthma   = condDef{"asthma", icd("J45.909", "Unspecified asthma, uncomplicated"), sct("195967001", "Asthma (disorder)"), 2, 0.09, true}
	cHF       = condDef{"hf", icd("I50.9", "Heart failure, unspecified"), sct("84114007", "Heart failure (disorder)"), 50, 0.06, true}
	cCKD      = condDef{"ckd", icd("N18.30", "Chronic kidney disease, stage 3 unspecified"), sct("433144002", "Chronic kidney disease stage 3 (disorder)"), 45, 0.07, true}
	cDep      = condDef{"dep", icd("F32.9", "Major depressive disorder, single episode, unspecified"), sct("35489007", "Depressive disorder (disorder)"), 14, 0.1, true}
	cObesity  = condDef{"obesity", icd("E66.9", "Obesity, unspecified"), sct("414916001", "Obesity (disorder)"), 6, 0.25, true}
	cCOPD     = condDef{"copd", icd("J44.9", "Chronic obstructive pulmonary disease, unspecified"), sct("13645005", "Chronic obstructive lung disease (disorder)"), 40, 0.06, true}
	cHypoT    = condDef{"hypot", icd("E03.9", "Hypothyroidism, unspecified"), sct("40930008", "Hypothyroidism (disorder)"), 18, 0.07, true}
	cAF       = condDef{"af", icd("I48.91", "Unspecified atrial fibrillation"), sct("49436004", "Atrial fibrillation (disorder)"), 55, 0.06, true}
	cGERD     = condDef{"gerd", icd("K21.9", "Gastro-esophageal reflux disease without esophagitis"), sct("235595009", "Gastroesophageal reflux disease (disorder)"), 18, 0.1, true}
	cGAD      = condDef{"gad", icd("F41.1", "Generalized anxiety disorder"), sct("21897009", "Generalized anxiety disorder (disorder)"), 14, 0.08, true}
	cMigraine = condDef{"migraine", icd("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"), sct("37796009", "Migraine (disorder)"), 12, 0.07, true}
	cOAKnee   = condDef{"oaknee", icd("M17.9", "Osteoarthritis of knee, unspecified"), sct("239873007", "Osteoarthritis of knee (disorder)"), 45, 0.1, true}
	cVitD     = condDef{"vitd", icd("E55.9", "Vitamin D deficiency, unspecified"), sct("34713006", "Vitamin D deficiency (disorder)"), 18, 0.06, true}
	cAnemia   = condDef{"anemia", icd("D64.9", "Anemia, unspecified"), sct("271737000", "Anemia (disorder)"), 12, 0.05, true}
	cPreDM    = condDef{"predm", icd("R73.03", "Prediabetes"), sct("714628002", "Prediabetes (finding)"), 25, 0.1, true}

	chronicConds = []condDef{cHTN, cDM2, cHLD, cAsthma, cHF, cCKD, cDep, cObesity, cCOPD, cHypoT, cAF, cGERD, cGAD, cMigraine, cOAKnee, cVitD, cAnemia, cPreDM}

	cURI        = condDef{"uri", icd("J06.9", "Acute upper respiratory infection, unspecified"), sct("54150009", "Upper respiratory infection (disorder)"), 0, 0, false}
	cPharyng    = condDef{"pharyng", icd("J02.9", "Acute pharyngitis, unspecified"), sct("405737000", "Pharyngitis (disorder)"), 3, 0, false}
	cUTI        = condDef{"uti", icd("N39.0", "Urinary tract infection, site not specified"), sct("68566005", "Urinary tract infectious disease (disorder)"), 5, 0, false}
	cAnkle      = condDef{"ankle", icd("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"), sct("44465007", "Sprain of ankle (disorder)"), 5, 0, false}
	cPneumonia  = condDef{"pneumonia", icd("J18.9", "Pneumonia, unspecified organism"), sct("233604007", "Pneumonia (disorder)"), 0, 0, false}
	cCovid      = condDef{"covid", icd("U07.1", "COVID-19"), sct("840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)"), 0, 0, false}
	cOtitis     = condDef{"otitis", icd("H66.90", "Otitis media, unspecified, unspecified ear"), sct("65363002", "Otitis media (disorder)"), 0, 0, false}
	acuteConds  = []condDef{cURI, cPharyng, cUTI, cAnkle, cPneumonia, cCovid, cOtitis}
	infectiousK = map[string]bool{"pharyng": true, "uti": true, "pneumonia": true, "otitis": true}
)

// medDef is an orderable medication.
type medDef struct {
	c    code
	text string
	sig  string
}

// RxNorm clinical drugs.
var (
	mLisinopril  = medDef{rxnorm("314076", "lisinopril 10 MG Oral Tablet"), "Lisinopril 10 mg tablet", "Take 1 tablet (10 mg) by mouth once daily."}
	mAmlodipine  = medDef{rxnorm("197361", "amlodipine 5 MG Oral Tablet"), "Amlodipine 5 mg tablet", "Take 1 tablet (5 mg) by mouth once daily."}
	mHCTZ        = medDef{rxnorm("310798", "hydrochlorothiazide 25 MG Oral Tablet"), "Hydrochlorothiazide 25 mg tablet", "Take 1 tablet by mouth every morning."}
	mMetformin   = medDef{rxnorm("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"), "Metformin ER 500 mg tablet", "Take 1 tablet by mouth once daily with the evening meal."}
	mAtorva      = medDef{rxnorm("617312", "atorvastatin 20 MG Oral Tablet"), "Atorvastatin 20 mg tablet", "Take 1 tablet by mouth at bedtime."}
	mSimva       = medDef{rxnorm("312961", "simvastatin 20 MG Oral Tablet"), "Simvastatin 20 mg tablet", "Take 1 tablet by mouth every evening."}
	mAlbuterol   = medDef{rxnorm("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"), "Albuterol HFA inhaler", "Inhale 2 puffs every 4 to 6 hours as needed for wheezing or shortness of breath."}
	mFluticasone = medDef{rxnorm("895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"), "Fluticasone 44 mcg inhaler", "Inhale 2 puffs twice daily. Rinse mouth after use."}
	mAcetaminoph = medDef{rxnorm("313782", "acetaminophen 325 MG Oral Tablet"), "Acetaminophen 325 mg tablet", "Take 2 tablets by mouth every 6 hours as needed for pain. Max 3 g per day."}
	mIbuprofen   = medDef{rxnorm("310965", "ibuprofen 200 MG Oral Tablet"), "Ibuprofen 200 mg tablet", "Take 2 tablets by mouth every 6 to 8 hours as needed with food."}
	mNaproxen    = medDef{rxnorm("849574", "naproxen sodium 220 MG Oral Tablet"), "Naproxen sodium 220 mg tablet", "Take 1 tablet by mouth every 12 hours as needed for joint pain."}
	mWarfarin    = medDef{rxnorm("855332", "warfarin sodium 5 MG Oral Tablet"), "Warfarin 5 mg tablet", "Take as directed by the anticoagulation clinic; usual dose 5 mg daily."}
	mFurosemide  = medDef{rxnorm("313988", "furosemide 40 MG Oral Tablet"), "Furosemide 40 mg tablet", "Take 1 tablet by mouth every morning."}
	mMetoprolol  = medDef{rxnorm("866427", "24 HR metoprolol succinate 25 MG Extended Release Oral Tablet"), "Metoprolol succinate ER 25 mg tablet", "Take 1 tablet by mouth once daily. Do not crush."}
	mLevothyrox  = medDef{rxnorm("966222", "levothyroxine sodium 0.075 MG Oral Tablet"), "Levothyroxine 75 mcg tablet", "Take 1 tablet by mouth every morning on an empty stomach."}
	mSertraline  = medDef{rxnorm("312940", "sertraline 50 MG Oral Tablet"), "Sertraline 50 mg tablet", "Take 1 tablet by mouth once daily."}
	mAmoxicillin = medDef{rxnorm("308182", "amoxicillin 250 MG Oral Capsule"), "Amoxicillin 250 mg capsule", "Take 2 capsules by mouth three times daily for 10 days."}
	mAspirin     = medDef{rxnorm("243670", "aspirin 81 MG Oral Tablet"), "Aspirin 81 mg tablet", "Take 1 tablet by mouth once daily."}

	// NDC-only products (no RxNorm coding), as some pharmacy feeds send them.
	mNDCLipitor = medDef{ndc("00071015523", "Lipitor 10 MG Oral Tablet"), "Lipitor 10 mg tablet", "Take 1 tablet by mouth daily."}
	mNDCAPAP    = medDef{ndc("10135014405", "Acetaminophen 500 MG Oral Tablet"), "Acetaminophen 500 mg tablet", "Take 1 to 2 tablets by mouth every 6 hours as needed."}
	mNDCPred    = medDef{ndc("00591544201", "Prednisone Oral Tablet"), "Prednisone tablet", "Take 40 mg by mouth daily for 5 days."}
	ndcMeds     = []medDef{mNDCLipitor, mNDCAPAP, mNDCPred}

	prnMeds = []medDef{mAcetaminoph, mIbuprofen, mNaproxen}
)

// condMeds maps a chronic condition key to the medications that treat it.
var condMeds = map[string][]medDef{
	"htn":      {mLisinopril, mAmlodipine, mHCTZ},
	"dm2":      {mMetformin, mAspirin},
	"hld":      {mAtorva, mSimva},
	"asthma":   {mAlbuterol, mFluticasone},
	"copd":     {mAlbuterol, mFluticasone},
	"hf":       {mFurosemide, mMetoprolol},
	"af":       {mWarfarin, mMetoprolol},
	"dep":      {mSertraline},
	"gad":      {mSertraline},
	"hypot":    {mLevothyrox},
	"oaknee":   {mNaproxen, mAcetaminoph},
	"migraine": {mIbuprofen},
}

// allergyDef is an allergen with its reactions.
type allergyDef struct {
	codes       []code
	text        string
	category    string
	typ         string
	criticality string
}

var allergies = []allergyDef{
	{[]code{sct("764146007", "Penicillin (substance)")}, "Penicillin", "medication", "allergy", "high"},
	{[]code{rxnorm("7980", "penicillin G")}, "Penicillin G", "medication", "allergy", "high"},
	{[]code{sct("256349002", "Peanut - dietary (substance)")}, "Peanuts", "food", "allergy", "high"},
	{[]code{sct("111088007", "Latex (substance)")}, "Latex", "environment", "allergy", "low"},
	{[]code{sct("387406002", "Sulfonamide (substance)")}, "Sulfa drugs", "medication", "allergy", "low"},
	{[]code{sct("300913006", "Shellfish (substance)")}, "Shellfish", "food", "allergy", "high"},
	{[]code{sct("288328004", "Bee venom (substance)")}, "Bee stings", "environment", "allergy", "high"},
	{[]code{sct("387458008", "Aspirin (substance)"), rxnorm("1191", "aspirin")}, "Aspirin", "medication", "intolerance", "low"},
	{[]code{sct("387494007", "Codeine (substance)"), rxnorm("2670", "codeine")}, "Codeine", "medication", "intolerance", "low"},
	{[]code{sct("102263004", "Eggs (edible) (substance)")}, "Eggs", "food", "allergy", "low"},
	{[]code{sct("256277009", "Grass pollen (substance)")}, "Grass pollen", "environment", "allergy", "low"},
}

// textOnlyAllergy is the uncoded drug allergy of patient IndexTextAllergy
// (Keflex is a brand of cephalexin, a cephalosporin).
var textOnlyAllergy = allergyDef{nil, "Keflex", "medication", "allergy", "low"}

var reactions = []code{
	sct("271807003", "Eruption of skin (disorder)"),
	sct("247472004", "Wheal (finding)"),
	sct("39579001", "Anaphylaxis (disorder)"),
	sct("267036007", "Dyspnea (finding)"),
	sct("422587007", "Nausea (finding)"),
	sct("418290006", "Itching of skin (finding)"),
	sct("267038008", "Edema (finding)"),
	sct("76067001", "Sneezing (finding)"),
}

// Vaccines (CVX).
var (
	vFlu       = cvx("150", "Influenza, injectable, quadrivalent, preservative free")
	vFluTri    = cvx("140", "Influenza, seasonal, injectable, preservative free")
	vCovidPfz  = cvx("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose")
	vCovidMod  = cvx("207", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 100 mcg/0.5mL dose")
	vTdap      = cvx("115", "Tdap")
	vPPV23     = cvx("33", "pneumococcal polysaccharide vaccine, 23 valent")
	vHepBAdult = cvx("43", "Hep B, adult")
	vHepBPed   = cvx("08", "Hep B, adolescent or pediatric")
	vDTaP      = cvx("20", "DTaP")
	vIPV       = cvx("10", "IPV")
	vHib       = cvx("49", "Hib (PRP-OMP)")
	vPCV13     = cvx("133", "Pneumococcal conjugate PCV 13")
	vMMR       = cvx("03", "MMR")
	vVaricella = cvx("21", "varicella")
	vHepAPed   = cvx("83", "Hep A, ped/adol, 2 dose")
	vHPV9      = cvx("165", "HPV9")
	vMenACWY   = cvx("114", "meningococcal MCV4P")
	vZoster    = cvx("187", "zoster vaccine recombinant")
)

// procDef is a procedure with SNOMED CT and/or CPT codings.
type procDef struct {
	sct, cpt code
	text     string
	minutes  int // > 0 means a performedPeriod of that length
}

var (
	pColonoscopy = procDef{sct("73761001", "Colonoscopy (procedure)"), cpt("45378", "Colonoscopy, flexible; diagnostic"), "Colonoscopy", 40}
	pChestXR     = procDef{sct("399208008", "Plain X-ray of chest (procedure)"), cpt("71046", "Radiologic examination, chest; 2 views"), "Chest X-ray", 0}
	pECG         = procDef{sct("29303009", "Electrocardiographic procedure (procedure)"), cpt("93000", "Electrocardiogram, routine ECG with at least 12 leads; with interpretation and report"), "ECG", 0}
	pSpirometry  = procDef{sct("127783003", "Spirometry (procedure)"), cpt("94010", "Spirometry"), "Spirometry", 0}
	pDepScreen   = procDef{sct("171207006", "Depression screening (procedure)"), code{}, "Depression screening", 0}
	pMedRec      = procDef{sct("430193006", "Medication reconciliation (procedure)"), code{}, "Medication reconciliation", 0}
	pMammo       = procDef{sct("71651007", "Mammography (procedure)"), cpt("77067", "Screening mammography, bilateral"), "Screening mammogram", 0}
	pAppendect   = procDef{sct("80146002", "Excision of appendix (procedure)"), cpt("44970", "Laparoscopy, surgical, appendectomy"), "Appendectomy", 75}
	pVenipunct   = procDef{code{}, cpt("36415", "Collection of venous blood by venipuncture"), "Venipuncture", 0}
	pThroatCult  = procDef{sct("117015009", "Throat culture (procedure)"), code{}, "Throat culture", 0}
)

// Diagnostic report and document codes (LOINC).
var (
	drBMP       = loinc("51990-0", "Basic metabolic panel - Blood")
	drCBC       = loinc("58410-2", "CBC panel - Blood by Automated count")
	drLipid     = loinc("24331-1", "Lipid 1996 panel - Serum or Plasma")
	drImaging   = loinc("18748-4", "Diagnostic imaging study")
	docSummary  = loinc("34133-9", "Summary of episode note")
	docProgress = loinc("11506-3", "Progress note")
	docDischarg = loinc("18842-5", "Discharge summary")
)

// Smoking status values (US Core smoking status value set, SNOMED CT).
var smokingValues = []weighted[code]{
	{0.6, sct("266919005", "Never smoked tobacco (finding)")},
	{0.25, sct("8517006", "Ex-smoker (finding)")},
	{0.15, sct("77176002", "Smoker (finding)")},
}

// Demographic tables. Names are common US names; phone numbers use the
// 555-01xx range reserved for fiction; email uses example.com.
var (
	givenFemale = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Lisa", "Nancy", "Sandra", "Ashley", "Emily", "Michelle", "Amanda", "Melissa", "Stephanie", "Rebecca", "Laura", "Maria", "Sofia", "Isabella", "Camila", "Mei", "Linh", "Priya", "Aisha", "Grace", "Hannah", "Olivia", "Emma", "Ava", "Chloe", "Ana", "Rosa", "Yesenia", "Thi", "Ji-woo"}
	givenMale   = []string{"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Paul", "Andrew", "Joshua", "Kevin", "Brian", "George", "Jose", "Luis", "Carlos", "Juan", "Wei", "Minh", "Raj", "Omar", "Ethan", "Noah", "Liam", "Lucas", "Mateo", "Hiroshi", "Dmitri", "Samuel", "Tyrone", "Jamal"}
	familyNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Wang", "Kim", "Patel", "Tran", "Park", "O'Brien", "Murphy", "Kowalski", "Ivanova"}
	streetNames = []string{"Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Pine", "Walnut", "Sunset", "River", "Church", "Highland", "Mill", "Jefferson", "Lincoln", "Spring", "Chestnut"}
	streetKinds = []string{"St", "Ave", "Rd", "Ln", "Dr", "Ct", "Blvd", "Way"}
	cities      = []struct{ city, state, zip, area string }{
		{"Boston", "MA", "02118", "617"}, {"Springfield", "IL", "62701", "217"}, {"Austin", "TX", "78701", "512"},
		{"Seattle", "WA", "98101", "206"}, {"Denver", "CO", "80202", "303"}, {"Atlanta", "GA", "30303", "404"},
		{"Phoenix", "AZ", "85004", "602"}, {"Portland", "OR", "97205", "503"}, {"Madison", "WI", "53703", "608"},
		{"Columbus", "OH", "43215", "614"}, {"Miami", "FL", "33130", "305"}, {"Minneapolis", "MN", "55401", "612"},
		{"Nashville", "TN", "37203", "615"}, {"Sacramento", "CA", "95814", "916"}, {"Raleigh", "NC", "27601", "919"},
		{"Albany", "NY", "12207", "518"},
	}
	clinicians = []string{"Dr. Alice Hartman", "Dr. Benjamin Okafor", "Dr. Carmen Ruiz", "Dr. Daniel Cho", "Dr. Evelyn Shah", "Dr. Frank Novak", "Dr. Grace Liu", "Dr. Henry Adeyemi"}
	facilities = []string{"Example General Hospital", "Example Community Clinic", "Riverside Family Medicine", "Example Urgent Care"}
)

// OMB race categories and ethnicity (CDC Race & Ethnicity, urn:oid:2.16.840.1.113883.6.238).
var (
	raceWhite = code{fhir.SystemRace, "2106-3", "White"}
	raceBlack = code{fhir.SystemRace, "2054-5", "Black or African American"}
	raceAsian = code{fhir.SystemRace, "2028-9", "Asian"}
	raceAIAN  = code{fhir.SystemRace, "1002-5", "American Indian or Alaska Native"}
	raceNHPI  = code{fhir.SystemRace, "2076-8", "Native Hawaiian or Other Pacific Islander"}
	raceASKU  = code{systemNullFlavor, "ASKU", "Asked but no answer"}
	ethHisp   = code{fhir.SystemRace, "2135-2", "Hispanic or Latino"}
	ethNot    = code{fhir.SystemRace, "2186-5", "Not Hispanic or Latino"}
)

// Languages (BCP 47).
var (
	langEn = code{systemBCP47, "en", "English"}
	langEs = code{systemBCP47, "es", "Spanish"}
	langZh = code{systemBCP47, "zh", "Chinese"}
	langVi = code{systemBCP47, "vi", "Vietnamese"}
	langKo = code{systemBCP47, "ko", "Korean"}
	langTl = code{systemBCP47, "tl", "Tagalog"}
	langRu = code{systemBCP47, "ru", "Russian"}
	langAr = code{systemBCP47, "ar", "Arabic"}
	langFr = code{systemBCP47, "fr", "French"}
)
