package hl7store

import (
	"testing"

	"ehrgate/events"
	"ehrgate/hl7/tofhir"
)

// Every message type tofhir converts raises an event of a kind that says
// what happened.
func TestEveryConvertedTriggerHasAKind(t *testing.T) {
	tests := map[string]events.Kind{
		"ADT^A01": events.Admitted, "ADT^A02": events.Transferred, "ADT^A03": events.Discharged,
		"ADT^A04": events.Registered, "ADT^A05": events.Preadmitted, "ADT^A06": events.ClassChanged,
		"ADT^A07": events.ClassChanged, "ADT^A08": events.Updated, "ADT^A11": events.Cancelled,
		"ADT^A12": events.Cancelled, "ADT^A13": events.Cancelled, "ADT^A21": events.LeaveStarted,
		"ADT^A22": events.LeaveEnded, "ADT^A23": events.Cancelled, "ADT^A28": events.Registered,
		"ADT^A31": events.Updated, "ADT^A34": events.Merged, "ADT^A39": events.Merged, "ADT^A40": events.Merged,
		"ADT^A47": events.Merged, "VXU^V04": events.Immunization, "ORM^O01": events.Ordered,
		"OML^O21": events.Ordered, "RDE^O11": events.Ordered, "RDE^O25": events.Ordered,
		"MDM^T02": events.Document, "MDM^T06": events.Document, "ADT^A17": events.Transferred,
		"SIU^S12": events.Scheduled, "SIU^S13": events.Scheduled, "SIU^S14": events.Scheduled,
		"SIU^S15": events.Scheduled, "SIU^S26": events.Scheduled,
	}
	for mt, want := range tests {
		code, trigger := mt[:3], mt[4:]
		if got := kindOf(&tofhir.Result{MessageType: code, Trigger: trigger}); got != want {
			t.Errorf("kindOf(%s) = %q, want %q", mt, got, want)
		}
	}
	if got := kindOf(&tofhir.Result{MessageType: "ORU", Trigger: "R01", ResultStatus: "final"}); got != events.ResultFinal {
		t.Errorf("kindOf(final ORU) = %q", got)
	}
}
