package ehrsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"ehrgate/fhir"
)

func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// writeBundle writes a searchset Bundle for the page. Resources are copied
// byte for byte from the index (they are compact JSON already), so a large
// page costs no re-encoding.
func (s *Server) writeBundle(w io.Writer, base, self, next string, p page) error {
	total := p.total
	b := fhir.Bundle{
		ResourceType: "Bundle",
		ID:           "sim-" + strconv.FormatUint(s.bundleSeq.Add(1), 16),
		Meta:         &fhir.Meta{LastUpdated: formatInstant(s.opts.Clock())},
		Type:         "searchset",
		Total:        &total,
		Link:         []fhir.BundleLink{{Relation: "self", URL: self}},
	}
	if next != "" {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: next})
	}
	head, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding bundle: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(len(head) + 64 + (len(p.matches)+len(p.includes))*1024)
	if len(p.matches)+len(p.includes) == 0 {
		buf.Write(head)
	} else {
		buf.Write(head[:len(head)-1]) // drop the closing brace
		buf.WriteString(`,"entry":[`)
		for i, e := range p.matches {
			writeEntry(&buf, base, e, "match", i > 0)
		}
		for i, e := range p.includes {
			writeEntry(&buf, base, e, "include", i > 0 || len(p.matches) > 0)
		}
		buf.WriteString("]}")
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	return nil
}

func writeEntry(buf *bytes.Buffer, base string, e *entry, mode string, comma bool) {
	if comma {
		buf.WriteByte(',')
	}
	fullURL, _ := json.Marshal(base + "/" + e.typ + "/" + e.id)
	buf.WriteString(`{"fullUrl":`)
	buf.Write(fullURL)
	buf.WriteString(`,"resource":`)
	buf.Write(e.body)
	buf.WriteString(`,"search":{"mode":"`)
	buf.WriteString(mode)
	buf.WriteString(`"}}`)
}
