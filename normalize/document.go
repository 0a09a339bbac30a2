package normalize

import "ehrgate/terminology"

type documentReferenceJSON struct {
	header
	Status  string           `json:"status"`
	Type    *codeableConcept `json:"type"`
	Subject *reference       `json:"subject"`
	Date    string           `json:"date"`
	Content []struct {
		Attachment *struct {
			ContentType string `json:"contentType"`
			Title       string `json:"title"`
		} `json:"attachment"`
	} `json:"content"`
}

// normalizeDocumentReference maps a DocumentReference, taking contentType
// and title from the first content attachment. Missing lists "type",
// "status", "date" and "content".
func normalizeDocumentReference(ref Ref, raw []byte) (Resource, error) {
	var in documentReferenceJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &DocumentReference{
		Common: Common{Source: ref, PatientID: patientRef(in.Subject)},
		Type:   concept(terminology.DocumentReferenceType, in.Type),
		Status: in.Status,
		Date:   in.Date,
	}
	hasContent := len(in.Content) > 0 && in.Content[0].Attachment != nil
	if hasContent {
		out.ContentType = in.Content[0].Attachment.ContentType
		out.Title = in.Content[0].Attachment.Title
	}
	var m missing
	m.check(in.Type.isZero(), "type")
	m.check(in.Status == "", "status")
	m.check(in.Date == "", "date")
	m.check(!hasContent, "content")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
