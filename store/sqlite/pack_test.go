package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite/internal/dictbuild"
)

func TestPackRoundTrip(t *testing.T) {
	random := make([]byte, 3000)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	obs := []byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":95,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`)
	cases := []struct {
		name       string
		in         []byte
		compressed bool
	}{
		{"nil", nil, false},
		{"empty", []byte{}, false},
		{"tiny", []byte(`{}`), false},
		{"observation", obs, true},
		{"incompressible", random, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range []byte{rawDictID, normalizedDictID} {
				p := pack(tc.in, id)
				if got := len(p) > 0 && p[0] == packMagic; got != tc.compressed {
					t.Fatalf("pack compressed = %v, want %v (%d -> %d bytes)", got, tc.compressed, len(tc.in), len(p))
				}
				if tc.compressed && len(p) >= len(tc.in) {
					t.Fatalf("compressed form not smaller: %d -> %d", len(tc.in), len(p))
				}
				back, err := unpack(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(back, tc.in) {
					t.Fatalf("round trip changed the bytes")
				}
			}
		})
	}
}

func TestUnpackRejectsDamage(t *testing.T) {
	p := pack([]byte(strings.Repeat(`{"resourceType":"Patient","id":"x"}`, 20)), rawDictID)
	for name, b := range map[string][]byte{
		"truncated header": {packMagic},
		"unknown dict":     append([]byte{packMagic, 99}, p[2:]...),
		"truncated body":   p[:len(p)/2],
	} {
		if _, err := unpack(b); err == nil {
			t.Errorf("%s: unpack accepted damaged input", name)
		}
	}
}

func FuzzPack(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}]}`))
	f.Add([]byte{packMagic, 1, 0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = unpack(b) // must not panic
		if len(b) > 0 && b[0] == packMagic {
			return // never a stored JSON body
		}
		back, err := unpack(pack(b, rawDictID))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip of %q: %q, %v", b, back, err)
		}
	})
}

// TestDictionariesAreReproducible: the embedded dictionaries are what
// `go generate ./store/sqlite` builds, so they can be audited and rebuilt.
func TestDictionariesAreReproducible(t *testing.T) {
	raw, norm, err := dictbuild.Build()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, rawDict3) || !bytes.Equal(norm, normDict4) {
		t.Fatal("dict/*.s2dict differ from dictbuild.Build(); a released dictionary must never change (add one with a new id instead)")
	}
}

// TestStoredBodiesCompressed writes through both write paths and checks the
// rows hold compressed bodies that read back unchanged, and that a row
// written plain (by an earlier version) still reads.
func TestStoredBodiesCompressed(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	mk := func(id string) store.Record {
		raw := []byte(`{"resourceType":"Condition","id":"` + id + `","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"Hypertensive disorder"}]},"subject":{"reference":"Patient/p1"}}`)
		rec, err := refresh.NewRecord("c", raw, now, "test")
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	put := mk("c1")
	if _, err := s.PutResources(ctx, []store.Record{put}); err != nil {
		t.Fatal(err)
	}
	batched := mk("c2")
	want2 := batched.Normalized
	s.PrepareRecord(&batched)
	batched.Normalized = nil // as ingest does
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{batched}}); err != nil {
		t.Fatal(err)
	}
	plain := mk("c3")
	if _, err := s.w.ExecContext(ctx, `INSERT INTO resource_versions (connection, type, id, version_id, patient_id, hash, raw, normalized, fetched_at)
		VALUES ('c','Condition','c3','h:x','p1',?,?,?,'')`, plain.Hash, plain.Raw, plain.Normalized); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES ('c','Condition','c3','h:x',?,'p1')`, plain.Hash); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id             string
		raw, norm      []byte
		wantCompressed bool
	}{{"c1", put.Raw, put.Normalized, true}, {"c2", batched.Raw, want2, true}, {"c3", plain.Raw, plain.Normalized, false}} {
		var raw, norm []byte
		if err := s.r.QueryRowContext(ctx, `SELECT raw, normalized FROM resource_versions WHERE id=?`, tc.id).Scan(&raw, &norm); err != nil {
			t.Fatal(err)
		}
		if got := raw[0] == packMagic && norm[0] == packMagic; got != tc.wantCompressed {
			t.Errorf("%s: stored compressed = %v, want %v", tc.id, got, tc.wantCompressed)
		}
		got, err := s.Get(ctx, "c", "Condition", tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Raw, tc.raw) || !bytes.Equal(got.Normalized, tc.norm) {
			t.Errorf("%s: read back differs:\nraw  %s\nnorm %s", tc.id, got.Raw, got.Normalized)
		}
	}
}

// TestPackRatioOnFixtures reports how well the dictionaries, built from
// synthetic data, compress real public resources (HL7 and US Core
// examples, Synthea output): the benchmark corpus comes from the same
// generator as the dictionaries, so its ratio is the optimistic one.
func TestPackRatioOnFixtures(t *testing.T) {
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures")
	}
	var docs [][]byte
	_ = filepath.WalkDir(filepath.Join(dir, "fhir"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".ndjson"):
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 16<<20)
			for sc.Scan() {
				if json.Valid(sc.Bytes()) {
					docs = append(docs, append([]byte(nil), sc.Bytes()...))
				}
			}
		case strings.HasSuffix(path, ".json"):
			var bundle struct {
				ResourceType string `json:"resourceType"`
				Entry        []struct {
					Resource json.RawMessage `json:"resource"`
				} `json:"entry"`
			}
			if json.Unmarshal(b, &bundle) != nil || bundle.ResourceType == "" {
				return nil
			}
			if bundle.ResourceType != "Bundle" {
				docs = append(docs, b)
			}
			for _, e := range bundle.Entry {
				if len(e.Resource) > 0 {
					docs = append(docs, e.Resource)
				}
			}
		}
		return nil
	})
	if len(docs) == 0 {
		t.Skipf("no FHIR fixtures under %s (set EHRGATE_FIXTURES)", dir)
	}
	var in, out int
	for _, d := range docs {
		p := pack(d, rawDictID)
		back, err := unpack(p)
		if err != nil || !bytes.Equal(back, d) {
			t.Fatalf("round trip failed on a fixture resource: %v", err)
		}
		in += len(d)
		out += len(p)
	}
	if out > in {
		t.Fatalf("packing grew the fixtures: %d -> %d bytes", in, out)
	}
	t.Logf("%d fixture resources: %d -> %d bytes (ratio %.2f)", len(docs), in, out, float64(in)/float64(out))
}

// TestReleasedDictionariesStillRead: rows packed with an older dictionary
// (ids 1 and 2) read back after new rows moved to newer ones.
func TestReleasedDictionariesStillRead(t *testing.T) {
	doc := []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Doe","given":["Jane"]}],"gender":"female","birthDate":"1970-01-01"}`)
	for _, id := range []byte{1, 2, rawDictID, normalizedDictID} {
		back, err := unpack(pack(doc, id))
		if err != nil || !bytes.Equal(back, doc) {
			t.Errorf("dictionary %d: unpack(pack(doc)) = %q, %v", id, back, err)
		}
	}
}
