package normalize

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchObservation is a typical US Core laboratory Observation as EHRs send
// it, with the elements normalize ignores (text, identifiers, performer...).
const benchObservation = `{"resourceType":"Observation","id":"serum-potassium-1","meta":{"versionId":"2","lastUpdated":"2024-03-01T09:00:00Z","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Potassium 5.4 mmol/L (H)</div>"},` +
	`"identifier":[{"system":"urn:oid:1.2.840.114350.1.13.0.1.7.2.798268","value":"1234567"}],` +
	`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}],"text":"Laboratory"}],` +
	`"code":{"coding":[{"system":"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14","code":"1558","display":"POTASSIUM"},{"system":"http://loinc.org","code":"2823-3","display":"Potassium SerPl-sCnc"}],"text":"Potassium"},` +
	`"subject":{"reference":"Patient/eVgg3VZLLY-nGmXLuHmIlUQ3","display":"Baxter, Amy"},"encounter":{"reference":"Encounter/e1"},` +
	`"effectiveDateTime":"2024-03-01T08:00:00Z","issued":"2024-03-01T08:45:00Z","performer":[{"reference":"Organization/lab","display":"Acme Lab"}],` +
	`"valueQuantity":{"value":5.4,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},` +
	`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H","display":"High"}],"text":"High"}],` +
	`"referenceRange":[{"low":{"value":3.5,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},"high":{"value":5.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},"text":"3.5 - 5.1 mmol/L"}]}`

// benchMedicationRequest is a typical MedicationRequest with RxNorm and NDC.
const benchMedicationRequest = `{"resourceType":"MedicationRequest","id":"mr-1","meta":{"versionId":"1","lastUpdated":"2024-01-15T10:00:00Z"},` +
	`"identifier":[{"system":"urn:oid:1.2.840.114350.1.13.0.1.7.2.798268","value":"998877"}],"status":"active","intent":"order",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/medicationrequest-category","code":"community"}]}],` +
	`"medicationCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/ndc","code":"0093-0058-01"},{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197361","display":"Amlodipine 5 MG Oral Tablet"}],"text":"amlodipine 5 mg tablet"},` +
	`"subject":{"reference":"Patient/eVgg3VZLLY-nGmXLuHmIlUQ3","display":"Baxter, Amy"},"encounter":{"reference":"Encounter/e1"},"authoredOn":"2024-01-15T09:55:00Z",` +
	`"requester":{"reference":"Practitioner/pr1","display":"Dr. Who"},` +
	`"dosageInstruction":[{"text":"Take 1 tablet by mouth daily","timing":{"repeat":{"frequency":1,"period":1,"periodUnit":"d"}},"route":{"coding":[{"system":"http://snomed.info/sct","code":"26643006","display":"Oral route"}]},` +
	`"doseAndRate":[{"doseQuantity":{"value":1,"unit":"tablet","system":"http://unitsofmeasure.org","code":"{tbl}"}}]}],` +
	`"dispenseRequest":{"numberOfRepeatsAllowed":3,"quantity":{"value":90,"unit":"tablet"},"expectedSupplyDuration":{"value":90,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}}}`

func benchNormalize(b *testing.B, typ, raw string) {
	data := []byte(raw)
	ref := Ref{Connection: "bench", Type: typ}
	if _, err := Normalize(ref, data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := Normalize(ref, data); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	// Per CPU-second (includes GC): stable on a shared machine where wall
	// time is not. Run with -cpu 1 for the per-core figure.
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "resources/cpu-s")
	}
}

func BenchmarkNormalizeObservation(b *testing.B) {
	benchNormalize(b, "Observation", benchObservation)
}

func BenchmarkNormalizeMedicationRequest(b *testing.B) {
	benchNormalize(b, "MedicationRequest", benchMedicationRequest)
}
