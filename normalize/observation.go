package normalize

import (
	"strings"

	"ehrgate/fhir"
	"ehrgate/terminology"
)

// valueX is the value[x] choice of an Observation or Observation.component,
// with its dataAbsentReason. Every R4 value type is decoded.
type valueX struct {
	ValueQuantity        *quantity        `json:"valueQuantity"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
	ValueString          *string          `json:"valueString"`
	ValueBoolean         *bool            `json:"valueBoolean"`
	ValueInteger         *int64           `json:"valueInteger"`
	ValueRange           *valueRange      `json:"valueRange"`
	ValueRatio           *struct {
		Numerator   *quantity `json:"numerator"`
		Denominator *quantity `json:"denominator"`
	} `json:"valueRatio"`
	ValuePeriod      *period          `json:"valuePeriod"`
	ValueTime        *string          `json:"valueTime"`
	ValueDateTime    *string          `json:"valueDateTime"`
	ValueSampledData *sampledData     `json:"valueSampledData"`
	DataAbsentReason *codeableConcept `json:"dataAbsentReason"`
}

type sampledData struct {
	Origin *quantity `json:"origin"`
	Data   string    `json:"data"`
}

// Value kinds: the values Value.Kind takes, one per FHIR value[x] type plus
// KindAbsent for a dataAbsentReason.
const (
	KindQuantity = "quantity"
	KindConcept  = "concept"
	KindString   = "string"
	KindBoolean  = "boolean"
	KindInteger  = "integer"
	KindRange    = "range"
	KindRatio    = "ratio"
	KindPeriod   = "period"
	KindTime     = "time"
	KindDateTime = "datetime"
	KindSampled  = "sampled"
	KindAbsent   = "absent"
)

// value maps value[x] to a Value, or nil when the source gave neither a
// value nor a dataAbsentReason.
func (v *valueX) value() *Value {
	switch {
	case v.ValueQuantity != nil:
		q := v.ValueQuantity
		return &Value{Kind: KindQuantity, Number: q.Value.float(), Comparator: q.Comparator, Unit: q.unit(), UnitCode: q.Code}
	case v.ValueCodeableConcept != nil:
		c := concept(terminology.ObservationValue, v.ValueCodeableConcept)
		return &Value{Kind: KindConcept, Concept: &c, Text: v.ValueCodeableConcept.label()}
	case v.ValueString != nil:
		return &Value{Kind: KindString, Text: *v.ValueString}
	case v.ValueBoolean != nil:
		b := *v.ValueBoolean
		return &Value{Kind: KindBoolean, Bool: &b}
	case v.ValueInteger != nil:
		f := float64(*v.ValueInteger)
		return &Value{Kind: KindInteger, Number: &f}
	case v.ValueRange != nil:
		r := v.ValueRange
		out := &Value{Kind: KindRange, Text: renderRange(r.Low, r.High)}
		if r.Low != nil {
			out.Low = r.Low.Value.float()
			out.Unit, out.UnitCode = r.Low.unit(), r.Low.Code
		}
		if r.High != nil {
			out.High = r.High.Value.float()
			if out.Unit == "" {
				out.Unit, out.UnitCode = r.High.unit(), r.High.Code
			}
		}
		return out
	case v.ValueRatio != nil:
		r := v.ValueRatio
		out := &Value{Kind: KindRatio}
		var num, den string
		if r.Numerator != nil {
			out.Numerator = r.Numerator.Value.float()
			num = renderQuantity(r.Numerator)
		}
		if r.Denominator != nil {
			out.Denominator = r.Denominator.Value.float()
			den = renderQuantity(r.Denominator)
		}
		if num != "" || den != "" {
			sep := "/"
			if r.Numerator != nil && r.Denominator != nil && r.Numerator.unit() == "" && r.Denominator.unit() == "" {
				sep = ":" // a titre such as 1:128
			}
			out.Text = num + sep + den
		}
		return out
	case v.ValuePeriod != nil:
		return &Value{Kind: KindPeriod, Start: v.ValuePeriod.Start, End: v.ValuePeriod.End}
	case v.ValueTime != nil:
		return &Value{Kind: KindTime, Text: *v.ValueTime}
	case v.ValueDateTime != nil:
		return &Value{Kind: KindDateTime, Text: *v.ValueDateTime}
	case v.ValueSampledData != nil:
		out := &Value{Kind: KindSampled, Text: v.ValueSampledData.Data}
		if o := v.ValueSampledData.Origin; o != nil {
			out.Unit, out.UnitCode = o.unit(), o.Code
		}
		return out
	case v.DataAbsentReason != nil:
		c := concept("", v.DataAbsentReason)
		return &Value{Kind: KindAbsent, Concept: &c, Text: v.DataAbsentReason.label()}
	}
	return nil
}

type referenceRange struct {
	Low  *quantity `json:"low"`
	High *quantity `json:"high"`
	Text string    `json:"text"`
}

type observationJSON struct {
	header
	Status            string            `json:"status"`
	Category          []codeableConcept `json:"category"`
	Code              *codeableConcept  `json:"code"`
	Subject           *reference        `json:"subject"`
	EffectiveDateTime string            `json:"effectiveDateTime"`
	EffectivePeriod   *period           `json:"effectivePeriod"`
	EffectiveInstant  string            `json:"effectiveInstant"`
	valueX
	Interpretation []codeableConcept `json:"interpretation"`
	ReferenceRange []referenceRange  `json:"referenceRange"`
	HasMember      []struct{}        `json:"hasMember"`
	Component      []struct {
		Code *codeableConcept `json:"code"`
		valueX
	} `json:"component"`
}

// normalizeObservation maps an Observation. Missing lists "code", "status",
// "effective" and "value"; "value" is not listed for a panel (components or
// hasMember) nor when a dataAbsentReason explains the absence (Value.Kind is
// then "absent"). Components are kept as received: blood-pressure panels are
// not split and units are not converted.
func normalizeObservation(ref Ref, raw []byte) (Resource, error) {
	var in observationJSON
	if fastObservation(raw, &in) {
		if err := checkHeader(&ref, &in.header); err != nil {
			return nil, err
		}
	} else {
		in = observationJSON{}
		if err := decode(&ref, raw, &in, &in); err != nil {
			return nil, err
		}
	}
	out := &Observation{
		Common:   Common{Source: ref, PatientID: patientRef(in.Subject)},
		Status:   in.Status,
		Category: categories(fhir.SystemObsCat, in.Category),
		Code:     concept(terminology.ObservationCode, in.Code),
		Value:    in.value(),
	}
	out.Effective = in.EffectiveDateTime
	if out.Effective == "" && in.EffectivePeriod != nil {
		out.Effective = in.EffectivePeriod.Start
	}
	if out.Effective == "" {
		out.Effective = in.EffectiveInstant
	}
	if len(in.Component) > 0 {
		out.Components = make([]Component, len(in.Component))
		for i := range in.Component {
			c := &in.Component[i]
			out.Components[i].Code = concept(terminology.ObservationCode, c.Code)
			if v := c.value(); v != nil {
				out.Components[i].Value = *v
			}
		}
	}
	if len(in.Interpretation) > 0 {
		out.Interpretation = in.Interpretation[0].code(fhir.SystemInterp)
	}
	if len(in.ReferenceRange) > 0 {
		r := &in.ReferenceRange[0]
		out.ReferenceRange = firstNonEmpty(renderRange(r.Low, r.High), r.Text)
	}
	var m missing
	m.check(in.Code.isZero(), "code")
	m.check(out.Value == nil && len(in.Component) == 0 && len(in.HasMember) == 0, "value")
	m.check(out.Effective == "", "effective")
	m.check(in.Status == "", "status")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}

// renderRange renders a low/high pair as "3.5–5.1 mmol/L", "≥3.5 mmol/L" or
// "≤5.1 mmol/L", keeping the source's decimal digits.
func renderRange(low, high *quantity) string {
	hasLow := low != nil && low.Value != ""
	hasHigh := high != nil && high.Value != ""
	switch {
	case hasLow && hasHigh:
		lu, hu := low.unit(), high.unit()
		if lu == hu || lu == "" {
			return withUnit(string(low.Value)+"–"+string(high.Value), hu)
		}
		return renderQuantity(low) + "–" + renderQuantity(high)
	case hasLow:
		return "≥" + renderQuantity(low)
	case hasHigh:
		return "≤" + renderQuantity(high)
	}
	return ""
}

func renderQuantity(q *quantity) string {
	if q == nil || q.Value == "" {
		return ""
	}
	return withUnit(q.Comparator+string(q.Value), q.unit())
}

func withUnit(s, unit string) string {
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// renderAge renders an Age quantity ("45 a") for onset/abatement fields.
func renderAge(q *quantity) string {
	if q == nil || q.Value == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("age ")
	b.WriteString(renderQuantity(q))
	return b.String()
}
