package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestSensitiveAttributesAreRedacted(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := New(&buf, "debug", format)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", "access_token", "eyJhbGciOi.secret", "client_secret", "s3cr3t", "Authorization", "Bearer abc",
			"type", "Observation")
		out := buf.String()
		for _, leaked := range []string{"eyJhbGciOi", "s3cr3t", "Bearer abc"} {
			if strings.Contains(out, leaked) {
				t.Errorf("%s log contains %q: %s", format, leaked, out)
			}
		}
		if !strings.Contains(out, "Observation") {
			t.Errorf("%s log lost an ordinary attribute: %s", format, out)
		}
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "loud", "text"); err == nil {
		t.Error("New with level loud succeeded")
	}
	if _, err := New(&bytes.Buffer{}, "info", "xml"); err == nil {
		t.Error("New with format xml succeeded")
	}
}
