package bulkexport

import (
	"encoding/json"
	"fmt"
	"strings"
)

// _elements (Bulk Data IG, kick-off parameters): a comma-separated (or
// repeated) list of top-level elements, each "name" (every type) or
// "Type.name" (that type only). A resource whose type has elements listed
// is served with only those, plus the ones it cannot do without
// (resourceType, id, meta), and meta.tag SUBSETTED so that nobody mistakes
// it for the whole resource; other types are served whole.

// elements maps a resource type ("" = every type) to its listed elements.
type elements map[string][]string

// subsettedTag marks a resource served with elements left out
// (https://hl7.org/fhir/R4/resource.html#tag).
var subsettedTag = map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}

// parseElements reads _elements values. Nested paths (Type.a.b) are
// refused, or ignored under handling=lenient.
func parseElements(vs []string, lenient bool) (elements, []string, error) {
	out := elements{}
	var warnings []string
	for _, e := range splitList(vs) {
		typ, name, dotted := strings.Cut(e, ".")
		if !dotted {
			typ, name = "", e
		}
		ok := name != "" && !strings.Contains(name, ".") && (typ == "" || typeName.MatchString(typ))
		if !ok {
			msg := fmt.Sprintf("_elements: %q is not a top-level element (name or Type.name)", e)
			if !lenient {
				return nil, nil, fmt.Errorf("%s", msg)
			}
			warnings = append(warnings, msg+"; ignored (handling=lenient)")
			continue
		}
		out[typ] = append(out[typ], name)
	}
	if len(out) == 0 {
		return nil, warnings, nil
	}
	return out, warnings, nil
}

// subset returns raw with only the elements listed for typ, tagged
// SUBSETTED, or raw itself when none is listed for typ.
func (e elements) subset(typ string, raw []byte) []byte {
	keep := append(append([]string{}, e[""]...), e[typ]...)
	if len(keep) == 0 {
		return raw
	}
	var res map[string]json.RawMessage
	if json.Unmarshal(raw, &res) != nil {
		return raw
	}
	out := map[string]any{}
	for _, k := range append(keep, "resourceType", "id") {
		if v, ok := res[k]; ok {
			out[k] = v
		}
	}
	meta := map[string]any{}
	if m, ok := res["meta"]; ok {
		_ = json.Unmarshal(m, &meta)
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, subsettedTag)
	out["meta"] = meta
	b, err := json.Marshal(out)
	if err != nil {
		return raw
	}
	return b
}
