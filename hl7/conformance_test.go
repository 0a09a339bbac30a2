package hl7

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixturesDir finds the shared fixtures: $EHRGATE_FIXTURES, else
// ../../shared/fixtures or ../../../shared/fixtures relative to the package.
func fixturesDir(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("EHRGATE_FIXTURES"), "../../shared/fixtures", "../../../shared/fixtures"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(c, "hl7v2")); err == nil && st.IsDir() {
			return c
		}
	}
	t.Skip("HL7 v2 fixtures not found: set EHRGATE_FIXTURES to the shared fixtures directory (see its MANIFEST.md)")
	return ""
}

// TestConformanceFixtures parses every .hl7 file of the shared fixture set in
// lenient mode and checks the basics every message must have.
func TestConformanceFixtures(t *testing.T) {
	root := filepath.Join(fixturesDir(t), "hl7v2")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".hl7") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	if len(files) == 0 {
		t.Skipf("no .hl7 files under %s", root)
	}
	strictOK := 0
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data, ParseOptions{})
			if err != nil {
				t.Fatalf("Parse(lenient) error = %v", err)
			}
			if _, ok := m.Segment("MSH", 1); !ok {
				t.Errorf("no MSH segment")
			}
			if m.Version() == "" && m.MessageType().Code == "" {
				t.Errorf("neither MSH-9 nor MSH-12 present")
			}
			// Re-encoding keeps every segment.
			m2, err := Parse(m.Encode(), ParseOptions{})
			if err != nil || m2.Len() != m.Len() {
				t.Errorf("re-parse of Encode() = %v segments, err %v; want %d", m2.Len(), err, m.Len())
			}
			// Every message of a batch parses on its own.
			for i, part := range SplitBatch(data) {
				if _, err := Parse(part, ParseOptions{}); err != nil {
					t.Errorf("message %d of batch: %v", i+1, err)
				}
			}
			if _, err := Parse(data, ParseOptions{Strict: true}); err == nil {
				strictOK++
			}
		})
	}
	t.Logf("%d fixture files parsed leniently; %d also pass strict mode", len(files), strictOK)
}
