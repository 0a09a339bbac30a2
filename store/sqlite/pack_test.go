package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

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

// releasedDictionaries are the SHA-256 hashes of every dictionary ever
// released: rows name theirs by id, so a released file must never change.
var releasedDictionaries = map[string]string{
	"raw-1.s2dict":        "970a4bc8e0a42f634e0ec9fa2cf310606d28830b2c64d5795b832718ffbe74f9",
	"normalized-2.s2dict": "c17ddab068e306b679b8fc8dfc9400f875ff557a47b683f5e6d152d91439f360",
	"raw-3.s2dict":        "2d19969e251547287a672754ce7946ab96b45fbf31ffa3c5b3fb04422bd7b56f",
	"normalized-4.s2dict": "7d2716e978dd0544b5761d35a63f0ad0da7c3ce7a644f0ba55c671339378970e",
}

// TestReleasedDictionariesNeverChange: every file under dict/ is a released
// dictionary with its recorded hash, and every embedded one is among them.
func TestReleasedDictionariesNeverChange(t *testing.T) {
	files, err := os.ReadDir("dict")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("dict", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		want, ok := releasedDictionaries[f.Name()]
		if !ok {
			t.Errorf("dict/%s has no recorded hash: record it in releasedDictionaries when it is released", f.Name())
			continue
		}
		seen++
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("dict/%s changed (sha256 %s, released as %s): a released dictionary must never change; add one with a new id", f.Name(), got, want)
		}
	}
	if seen != len(releasedDictionaries) {
		t.Errorf("%d of %d released dictionaries are under dict/", seen, len(releasedDictionaries))
	}
	for name, b := range map[string][]byte{"raw-1": rawDict1, "normalized-2": normDict2, "raw-3": rawDict3, "normalized-4": normDict4} {
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != releasedDictionaries[name+".s2dict"] {
			t.Errorf("embedded %s is not the released file", name)
		}
	}
}

// TestDictionariesFitTodaysData: the dictionaries of new rows still
// compress today's synthetic sample (and its normalized form) within 10% of
// dictionaries built from it now. When the generator or the model has
// drifted further, build new ones (see dictbuild) with new ids.
func TestDictionariesFitTodaysData(t *testing.T) {
	raw, norm, err := dictbuild.Docs()
	if err != nil {
		t.Fatal(err)
	}
	freshRaw, freshNorm, err := dictbuild.Build()
	if err != nil {
		t.Fatal(err)
	}
	size := func(d *s2.Dict, docs [][]byte) int {
		n := 0
		for _, doc := range docs {
			n += len(d.Encode(nil, doc))
		}
		return n
	}
	for _, c := range []struct {
		name        string
		docs        [][]byte
		used, fresh *s2.Dict
	}{
		{"raw", raw, dicts[rawDictID], s2.NewDict(freshRaw)},
		{"normalized", norm, dicts[normalizedDictID], s2.NewDict(freshNorm)},
	} {
		used, fresh := size(c.used, c.docs), size(c.fresh, c.docs)
		t.Logf("%s: %d documents compress to %d bytes with the dictionary in use, %d with a fresh build", c.name, len(c.docs), used, fresh)
		if float64(used) > 1.10*float64(fresh) {
			t.Errorf("%s: the dictionary in use gives %d bytes, a fresh build %d: build new dictionaries with new ids", c.name, used, fresh)
		}
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
