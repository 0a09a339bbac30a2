package tofhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ehrgate/hl7"
)

func TestDisambiguate(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		detail []string
		want   []string
	}{
		{"unique keys kept", []string{"a", "b"}, []string{"x", "y"}, []string{"a", "b"}},
		{"repeats told apart by detail", []string{"a", "a", "b"}, []string{"x", "y", "z"}, []string{"a|x", "a|y", "b"}},
		{"same detail: occurrence", []string{"a", "a", "a"}, []string{"x", "x", "y"}, []string{"a|x#1", "a|x#2", "a|y"}},
		{"no detail", []string{"a", "a"}, []string{"", ""}, []string{"a|#1", "a|#2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := disambiguate(tc.keys, func(i int) string { return tc.detail[i] })
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("disambiguate(%q) mismatch (-want +got):\n%s", tc.keys, d)
			}
		})
	}
}

func TestUsableIdentifier(t *testing.T) {
	c := &conv{o: Options{Placeholders: []string{"NOMRN"}}}
	for v, want := range map[string]bool{
		"100200": true, "A-17": true, "0000000001": true,
		"": false, "  ": false, `""`: false, "UNKNOWN": false, "unk": false, "000-000": false,
		"12\x0034": false, "\t12": false, "nomrn": false,
	} {
		if got := c.usableIdentifier(v) == ""; got != want {
			t.Errorf("usableIdentifier(%q) usable = %v, want %v", v, got, want)
		}
	}
}

func TestCharsets(t *testing.T) {
	msg := func(msh18 string) *hl7.Message {
		raw := "MSH|^~\\&|REG|NORTHMC|||20260301||ADT^A28^ADT_A05|C1|P|2.5.1||||||" + msh18 +
			"\rPID|1||100200^^^NORTHMC^MR||M\xfcller^J\xf6rg||19790412|M\r"
		m, err := hl7.Parse([]byte(raw), hl7.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	family := func(t *testing.T, res *Result) string {
		t.Helper()
		var p struct {
			Name []struct {
				Family string
				Given  []string
			}
		}
		if err := json.Unmarshal(res.Resources[0].JSON, &p); err != nil || len(p.Name) == 0 {
			t.Fatalf("patient JSON: %v %s", err, res.Resources[0].JSON)
		}
		return p.Name[0].Family + " " + strings.Join(p.Name[0].Given, " ")
	}
	for _, cs := range []string{"8859/1", "ISO IR100", "8859/15"} {
		res, err := Convert(msg(cs), Options{})
		if err != nil {
			t.Fatalf("Convert(MSH-18 %s): %v", cs, err)
		}
		if got := family(t, res); got != "Müller Jörg" {
			t.Errorf("MSH-18 %s: name %q, want %q", cs, got, "Müller Jörg")
		}
	}
	// No MSH-18: Latin-1 bytes are not UTF-8; refused rather than mangled,
	// unless the feed says what its default is.
	var me *hl7.MessageError
	if _, err := Convert(msg(""), Options{}); !errors.As(err, &me) || me.Location.Field != 18 {
		t.Errorf("Convert(no MSH-18, Latin-1 bytes) = %v, want a refusal at MSH-18", err)
	}
	res, err := Convert(msg(""), Options{Charset: "8859/1"})
	if err != nil {
		t.Fatalf("Convert with feed charset: %v", err)
	}
	if got := family(t, res); got != "Müller Jörg" {
		t.Errorf("feed charset: name %q", got)
	}
	if _, err := Convert(msg("KLINGON"), Options{}); !errors.As(err, &me) || me.Condition != hl7.ErrTableValueNotFound {
		t.Errorf("unknown MSH-18 = %v, want 103", err)
	}
}

// Check refuses exactly what Convert refuses, with the same error.
func TestCheckAgreesWithConvert(t *testing.T) {
	msgs := []string{
		"MSH|^~\\&|A|F|||20260101||ADT^A04^ADT_A01|C1|P|2.5.1\rPID|1||77^^^F^MR||Doe^Jo\rPV1|1|O\r",
		"MSH|^~\\&|A|F|||20260101||ADT^A04^ADT_A01|C2|P|2.5.1\rPID|1||\"\"^^^F^MR||Doe^Jo\rPV1|1|O\r",
		"MSH|^~\\&|A|F|||20260101||ADT^A04^ADT_A01|C3|P|2.5.1\rPID|1||77^^^F^MR\rPV1|1|O\r",
		"MSH|^~\\&|L|F|||20260101||ORU^R01^ORU_R01|C4|P|2.5.1\rPID|1||77^^^F^MR||Doe^Jo\rOBR|1||F1|2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||abc|mg/dL\r",
		"MSH|^~\\&|A|F|||20260101||SIU^S12|C5|P|2.5.1\rPID|1||77^^^F^MR||Doe^Jo\r",
	}
	for _, raw := range msgs {
		m, err := hl7.Parse([]byte(raw), hl7.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, convErr := Convert(m, Options{})
		checkErr := Check(m, Options{})
		if fmt.Sprint(convErr) != fmt.Sprint(checkErr) {
			t.Errorf("message %s: Check = %v, Convert = %v", m.ControlID(), checkErr, convErr)
		}
	}
}
