package fhir

import "encoding/json"

// Bundle is a FHIR Bundle. Entry resources stay raw so that every resource is
// kept byte for byte as the server sent it.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *Meta         `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleLink is a navigation link in a search set (self, next, previous).
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one entry of a Bundle.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *BundleSearch   `json:"search,omitempty"`
	Request  *BundleRequest  `json:"request,omitempty"`
	Response *BundleResponse `json:"response,omitempty"`
}

// BundleSearch says why an entry is in a search set.
type BundleSearch struct {
	Mode  string   `json:"mode,omitempty"` // match | include | outcome
	Score *float64 `json:"score,omitempty"`
}

// BundleRequest is the request part of a transaction or batch entry.
type BundleRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// BundleResponse is the response part of a transaction-response entry.
type BundleResponse struct {
	Status   string `json:"status"`
	Location string `json:"location,omitempty"`
	Etag     string `json:"etag,omitempty"`
}

// LinkURL returns the URL of the first link with the given relation. "prev"
// and "previous" are treated as the same relation because servers use both.
func (b *Bundle) LinkURL(relation string) string {
	for _, l := range b.Link {
		if l.Relation == relation {
			return l.URL
		}
		if (relation == "previous" && l.Relation == "prev") || (relation == "prev" && l.Relation == "previous") {
			return l.URL
		}
	}
	return ""
}
