package fhir

import (
	"slices"
	"testing"
)

func TestIsResourceType(t *testing.T) {
	if !slices.IsSorted(resourceTypes) || len(slices.Compact(slices.Clone(resourceTypes))) != len(resourceTypes) {
		t.Fatal("resourceTypes must be sorted and without duplicates (IsResourceType searches it)")
	}
	tests := []struct {
		name string
		want bool
	}{
		{"Patient", true}, {"Observation", true}, {"VisionPrescription", true}, {"Account", true},
		{"patient", false}, {"Resource", false}, {"DomainResource", false}, {"", false}, {"Observations", false},
	}
	for _, tc := range tests {
		if got := IsResourceType(tc.name); got != tc.want {
			t.Errorf("IsResourceType(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
