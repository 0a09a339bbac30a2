package risk

import (
	"strings"

	"ehrgate/normalize"
	"ehrgate/terminology"
)

// codeSet is a set of condition codes: ICD-10-CM codes by prefix (dots
// removed, upper case; "I48" matches I48.0, I48.91, ...) with excluded
// prefixes, and SNOMED CT concepts by exact code.
type codeSet struct {
	name    string
	icd     []string // ICD-10-CM prefixes
	exclude []string // ICD-10-CM prefixes excluded from icd
	snomed  []string // SNOMED CT concept ids
	source  string   // where the list comes from
}

// The code sets of CHA₂DS₂-VASc's inputs and of the care-gap rules.
//
// The score's items are those of Lip GYH et al., "Refining clinical risk
// stratification for predicting stroke and thromboembolism in atrial
// fibrillation using a novel risk factor-based approach: the Euro Heart
// Survey on Atrial Fibrillation", Chest 2010;137(2):263-272,
// doi:10.1378/chest.09-1584. The ICD-10 definitions follow the comorbidity
// case definitions of Table 1 of Lip/Nielsen-style registry work as
// published in J Am Heart Assoc 2017;6(11):e007129, doi:10.1161/JAHA.117.007129
// (https://pmc.ncbi.nlm.nih.gov/articles/PMC5721787/table/jah32700-tbl-0001),
// mapped to ICD-10-CM categories (E14 of WHO ICD-10 has no ICD-10-CM
// counterpart; E08/E09/E13 are its ICD-10-CM diabetes categories). SNOMED
// CT concepts are the common disorder concepts (SNOMED CT International
// Edition concept ids), the same ones terminology/data/condition_categories.csv
// lists where it lists them.
var (
	// Atrial fibrillation, not flutter: ICD-10-CM I48.0 paroxysmal,
	// I48.1x persistent, I48.2x chronic/permanent, I48.91 unspecified;
	// I48.3, I48.4 and I48.92 (flutter) are left out.
	setAF = codeSet{name: "atrial fibrillation", icd: []string{"I480", "I481", "I482", "I4891"},
		snomed: []string{"49436004", "282825002", "440059007", "440028005", "426749004"},
		source: "ICD-10-CM I48.0-I48.2, I48.91; SNOMED CT 49436004 and its paroxysmal, persistent, permanent, chronic subtypes"}
	// Congestive heart failure / LV dysfunction (JAHA 2017 Table 1).
	setCHF = codeSet{name: "congestive heart failure", icd: []string{"I099", "I110", "I130", "I132", "I255", "I420", "I425", "I426", "I427", "I428", "I429", "I43", "I50"},
		snomed: []string{"84114007", "42343007", "88805009", "85232009", "417996009"},
		source: "ICD-10-CM I09.9, I11.0, I13.0, I13.2, I25.5, I42.0, I42.5-I42.9, I43, I50 (JAHA 2017;6:e007129 Table 1); SNOMED CT heart failure concepts"}
	// Hypertension (JAHA 2017 Table 1: I10, I11-I13, I15; ICD-10-CM adds I16
	// hypertensive crisis within I10-I16).
	setHTN = codeSet{name: "hypertension", icd: []string{"I10", "I11", "I12", "I13", "I15", "I16"},
		snomed: []string{"38341003", "59621000", "1201005"},
		source: "ICD-10-CM I10-I13, I15, I16 (JAHA 2017;6:e007129 Table 1); SNOMED CT 38341003, 59621000, 1201005"}
	// Diabetes mellitus: ICD-10-CM E08-E13 (JAHA 2017 Table 1 E10-E14 in
	// WHO ICD-10).
	setDM = codeSet{name: "diabetes mellitus", icd: []string{"E08", "E09", "E10", "E11", "E13"},
		snomed: []string{"73211009", "44054006", "46635009"},
		source: "ICD-10-CM E08-E13 (JAHA 2017;6:e007129 Table 1); SNOMED CT 73211009, 44054006, 46635009"}
	// Stroke, TIA, thromboembolism: ischaemic stroke or TIA (JAHA 2017
	// Table 1: H34.1, H34.2, I63, I64, G45 except G45.4), systemic arterial
	// embolism (I74), and the ICD-10-CM history code Z86.73.
	setStroke = codeSet{name: "stroke, TIA or thromboembolism", icd: []string{"H341", "H342", "I63", "I64", "G45", "I74", "Z8673"},
		exclude: []string{"G454"},
		snomed:  []string{"230690007", "422504002", "432504007", "266257000", "1386000"},
		source:  "ICD-10-CM H34.1, H34.2, I63, I64, G45 except G45.4, I74, Z86.73 (JAHA 2017;6:e007129 Table 1); SNOMED CT stroke, ischaemic stroke, cerebral infarction, TIA, arterial embolism"}
	// Vascular disease: prior myocardial infarction, peripheral artery
	// disease, aortic plaque (JAHA 2017 Table 1, MI and peripheral
	// vascular disease).
	setVascular = codeSet{name: "vascular disease", icd: []string{"I21", "I22", "I252", "I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792"},
		snomed: []string{"22298006", "399211009", "399957001", "840580004"},
		source: "ICD-10-CM I21, I22, I25.2 (myocardial infarction), I70, I71, I73.1, I73.8, I73.9, I77.1, I79.0, I79.2 (peripheral vascular disease) (JAHA 2017;6:e007129 Table 1); SNOMED CT 22298006, 399211009, 399957001, 840580004"}
)

// match returns the coding of c that falls in s, or false.
func (s codeSet) match(c normalize.Concept) (normalize.Coding, bool) {
	codings := append([]normalize.Coding{{System: c.System, Code: c.Code, Display: c.Display}}, c.Original...)
	for _, cd := range codings {
		switch cd.System {
		case terminology.SystemICD10CM:
			code := strings.ToUpper(strings.ReplaceAll(cd.Code, ".", ""))
			if hasPrefix(code, s.icd) && !hasPrefix(code, s.exclude) {
				return cd, true
			}
		case terminology.SystemSNOMED:
			for _, x := range s.snomed {
				if cd.Code == x {
					return cd, true
				}
			}
		}
	}
	return normalize.Coding{}, false
}

func hasPrefix(code string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// Oral anticoagulants by RxNorm ingredient (RxCUI of TTY IN, from RxNav,
// https://mor.nlm.nih.gov/RxNav/): the vitamin K antagonist warfarin and the
// direct oral anticoagulants the 2023 ACC/AHA/ACCP/HRS atrial fibrillation
// guideline names (Joglar JA et al., Circulation 2024;149:e1-e156,
// doi:10.1161/CIR.0000000000001193): apixaban, dabigatran, edoxaban,
// rivaroxaban.
var anticoagulants = map[string]string{
	"11289":   "warfarin",
	"1364430": "apixaban",
	"1037042": "dabigatran",
	"1599538": "edoxaban",
	"1114195": "rivaroxaban",
}

// HbA1c LOINC codes: 4548-4 Hemoglobin A1c/Hemoglobin.total in Blood, the
// code named by the issue, and 17856-6 (the same by HPLC) and 4549-2 (by
// electrophoresis), both in LOINC's HbA1c group (https://loinc.org/4548-4/).
var hba1cLOINC = []string{"4548-4", "17856-6", "4549-2"}
