package ehrsim

import "encoding/json"

// corruption is one way to break a resource for a strict typed decoder: the
// named field gets a value of the wrong JSON type.
type corruption struct {
	field string
	value json.RawMessage
}

// corruptions lists, per resource type, the fields tried in order; the first
// one the resource has is replaced. otherCorruptions serve every other type.
// When none is present the last entry is added (Patient.name, or text, the
// Narrative every DomainResource may carry).
var (
	patientCorruptions = []corruption{
		{"birthDate", json.RawMessage(`19700101`)},
		{"name", json.RawMessage(`"x"`)},
	}
	otherCorruptions = []corruption{
		{"subject", json.RawMessage(`12345`)},
		{"patient", json.RawMessage(`12345`)},
		{"code", json.RawMessage(`12345`)},
		{"text", json.RawMessage(`12345`)},
	}
)

// corrupt returns obj with one well-known field replaced by a value of the
// wrong JSON type (for example "subject": 12345). resourceType, id and meta
// are never touched, and the result is valid JSON.
func corrupt(resourceType string, obj object) object {
	list := otherCorruptions
	if resourceType == "Patient" {
		list = patientCorruptions
	}
	obj = obj.clone()
	for _, c := range list {
		if _, ok := obj.get(c.field); ok {
			return obj.set(c.field, c.value, "")
		}
	}
	last := list[len(list)-1]
	return obj.set(last.field, last.value, "")
}
