package normalize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var fastCmpOpts = cmp.Options{cmp.Exporter(func(reflect.Type) bool { return true }), cmpopts.EquateEmpty()}

// checkFastAgrees asserts the fast decoders either give up or produce what
// encoding/json produces, and never accept input encoding/json rejects. It
// reports whether the fast Observation and MedicationRequest paths accepted.
func checkFastAgrees(t *testing.T, raw []byte) (obsOK, medOK bool) {
	t.Helper()
	var fo, so observationJSON
	obsOK = fastObservation(raw, &fo)
	if err := json.Unmarshal(raw, &so); obsOK && err != nil {
		t.Errorf("fastObservation accepted input encoding/json rejects (%v):\n%q", err, raw)
	} else if obsOK {
		if diff := cmp.Diff(so, fo, fastCmpOpts); diff != "" {
			t.Errorf("fastObservation mismatch (-encoding/json +fast):\n%s\ninput: %q", diff, raw)
		}
	}
	var fm, sm medicationRequestJSON
	medOK = fastMedicationRequest(raw, &fm)
	if err := json.Unmarshal(raw, &sm); medOK && err != nil {
		t.Errorf("fastMedicationRequest accepted input encoding/json rejects (%v):\n%q", err, raw)
	} else if medOK {
		if diff := cmp.Diff(sm, fm, fastCmpOpts); diff != "" {
			t.Errorf("fastMedicationRequest mismatch (-encoding/json +fast):\n%s\ninput: %q", diff, raw)
		}
	}
	return obsOK, medOK
}

func TestFastDecoderAgrees(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		obsOK, medOK := checkFastAgrees(t, raw)
		// Well-formed inputs must take the fast path, or it is dead code.
		if strings.HasPrefix(name, "obs-") && !obsOK {
			t.Errorf("fastObservation(%s) gave up on a well-formed Observation", name)
		}
		if strings.HasPrefix(name, "med-") && name != "med-contained.json" && !medOK {
			t.Errorf("fastMedicationRequest(%s) gave up on a well-formed MedicationRequest", name)
		}
	}
	for _, raw := range []string{benchObservation, benchMedicationRequest} {
		checkFastAgrees(t, []byte(raw))
	}
}

func TestFastDecoderEdgeCases(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{`{"resourceType":"Observation","id":"1"}`, true},
		{` {"resourceType" : "Observation" , "id" : "1" } `, true},
		{`{"resourceType":"Observation","id":"1",}`, false},
		{`{"resourceType":"Observation","id":"1"} x`, false},
		{`{"resourceType":"Observation","id":"1","id":"2"}`, false},          // duplicate key
		{`{"resourceType":"Observation","ID":"1"}`, false},                   // case-folded key
		{`{"resourceType":"Observation","i\u0064":"1"}`, false},              // escaped key
		{`{"resourceType":"Observation","id":"\u00e9t\u00e9"}`, true},        // escaped value
		{`{"resourceType":"Observation","id":"1","status":null}`, true},      // null scalar
		{`{"resourceType":"Observation","id":"1","category":[null]}`, false}, // null element
		{`{"resourceType":"Observation","id":"1","valueInteger":1.5}`, false},
		{`{"resourceType":"Observation","id":"1","valueInteger":12}`, true},
		{`{"resourceType":"Observation","id":"1","valueQuantity":{"value":01}}`, false},
		{`{"resourceType":"Observation","id":"1","valueQuantity":{"value":-1.5e3}}`, true},
		{`{"resourceType":"Observation","id":"1","valueQuantity":{"value":"1"}}`, false},
		{`{"resourceType":"Observation","id":"1","valueBoolean":truex}`, false},
		{`{"resourceType":"Observation","id":"1","extra":{"a":[1,true,null,"\ud83d\ude00"]}}`, true},
		{`{"resourceType":"Observation","id":"1","extra":"bad \x escape"}`, false},
		{`{"resourceType":"Observation","id":"1","extra":"` + "\x01" + `"}`, false},
		{`{"resourceType":"Observation","id":"1","subject":12345}`, false},
		{`{"resourceType":"Observation","id":"1","hasMember":[{"reference":"Observation/2"},{}]}`, true},
		{`[]`, false},
		{``, false},
	}
	for _, tc := range tests {
		var in observationJSON
		got := fastObservation([]byte(tc.in), &in)
		if got != tc.wantOK {
			t.Errorf("fastObservation(%q) = %v, want %v", tc.in, got, tc.wantOK)
		}
		checkFastAgrees(t, []byte(tc.in))
	}
}

func FuzzFastDecoderAgrees(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(benchObservation))
	f.Add([]byte(benchMedicationRequest))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkFastAgrees(t, raw)
	})
}
