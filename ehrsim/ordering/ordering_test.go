package ordering

import (
	"testing"
)

// The card detail's markdown: bold is rendered, anything else a CDS
// service sends stays text.
func TestMarkdown(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"**Draft order:** amoxicillin", "<strong>Draft order:</strong> amoxicillin"},
		{"<script>alert(1)</script> **x**", "&lt;script&gt;alert(1)&lt;/script&gt; <strong>x</strong>"},
		{"**<b>bold</b>**", "<strong>&lt;b&gt;bold&lt;/b&gt;</strong>"},
		{"a ** b", "a ** b"},
	} {
		if got := string(markdown(tc.in)); got != tc.want {
			t.Errorf("markdown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
