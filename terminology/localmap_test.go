package terminology

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const epicLab = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.2"

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocalMapLookupAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.csv")
	writeFile(t, path, "# lab codes from hospital-a\n"+
		"connection,source_system,source_code,target_system,target_code,target_display\n"+
		"hospital-a,"+epicLab+",1558,http://loinc.org,2823-3,Potassium\n"+
		"*,"+epicLab+",1001,urn:oid:2.16.840.1.113883.6.1,718-7,Hemoglobin\n"+
		"hospital-a,"+epicLab+",2002,,,\n") // template row: skipped
	m, err := OpenLocalMap(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		conn, code string
		want       Target
		ok         bool
	}{
		{"hospital-a", "1558", Target{SystemLOINC, "2823-3", "Potassium"}, true},
		{"hospital-b", "1558", Target{}, false}, // another connection's code
		{"hospital-b", "1001", Target{SystemLOINC, "718-7", "Hemoglobin"}, true},
		{"hospital-a", "2002", Target{}, false},
	}
	for _, tc := range tests {
		got, ok := m.Lookup(tc.conn, epicLab, tc.code)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Lookup(%q, %q) = %+v, %v, want %+v, %v", tc.conn, tc.code, got, ok, tc.want, tc.ok)
		}
	}

	// Unchanged file: no reload.
	if changed, err := m.ReloadIfChanged(); changed || err != nil {
		t.Errorf("ReloadIfChanged() on an unchanged file = %v, %v", changed, err)
	}
	// An edit is picked up without a restart.
	writeFile(t, path, "connection,source_system,source_code,target_system,target_code,target_display\n"+
		"hospital-a,"+epicLab+",2002,http://loinc.org,2951-2,Sodium\n")
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(path, future, future)
	if changed, err := m.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("ReloadIfChanged() after an edit = %v, %v", changed, err)
	}
	if got, ok := m.Lookup("hospital-a", epicLab, "2002"); !ok || got.Code != "2951-2" {
		t.Errorf("after reload Lookup(2002) = %+v, %v", got, ok)
	}
	if _, ok := m.Lookup("hospital-a", epicLab, "1558"); ok {
		t.Errorf("after reload a removed row still maps")
	}
	// A broken edit keeps the previous map.
	writeFile(t, path, "connection,source_system,source_code,target_system,target_code\nhospital-a,x,1,http://example.org/not-standard,9\n")
	if err := m.Reload(); err == nil {
		t.Errorf("Reload() of a map targeting a non-standard system = nil error")
	}
	if got, ok := m.Lookup("hospital-a", epicLab, "2002"); !ok || got.Code != "2951-2" {
		t.Errorf("after a failed reload Lookup(2002) = %+v, %v, want the previous map", got, ok)
	}
}

func TestLocalMapWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.csv")
	header := "connection,source_system,source_code,target_system,target_code\n"
	writeFile(t, path, header)
	m, err := OpenLocalMap(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.Watch(ctx, 5*time.Millisecond, nil) }()
	defer func() { cancel(); wg.Wait() }()
	// Readers run while the watcher reloads (run with -race).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			m.Lookup("c", epicLab, "7")
		}
	}()
	writeFile(t, path, header+"c,"+epicLab+",7,http://loinc.org,8867-4\n")
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(path, future, future)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, ok := m.Lookup("c", epicLab, "7"); ok && got.Code == "8867-4" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the edit within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseLocalMapErrors(t *testing.T) {
	tests := []string{
		"connection,source_system\n", // required columns missing
		"connection,source_system,source_code,target_system,target_code,extra\n", // unknown column
	}
	for _, in := range tests {
		if _, err := ParseLocalMap(strings.NewReader(in)); err == nil {
			t.Errorf("ParseLocalMap(%q) = nil error", in)
		}
	}
	dup := []LocalMapRow{
		{Connection: "c", SourceSystem: "s", SourceCode: "1", TargetSystem: SystemLOINC, TargetCode: "718-7"},
		{Connection: "c", SourceSystem: "s", SourceCode: "1", TargetSystem: SystemLOINC, TargetCode: "4544-3"},
	}
	if _, err := NewLocalMap(dup); err == nil {
		t.Errorf("NewLocalMap with a code mapped twice = nil error")
	}
}

func TestWriteLocalMapRoundTrip(t *testing.T) {
	rows := []LocalMapRow{
		{Connection: "c", SourceSystem: epicLab, SourceCode: "1", SourceDisplay: "=HYPERLINK(\"x\")", Count: 12},
		{Connection: "c", SourceSystem: epicLab, SourceCode: "2", SourceDisplay: "Sodium, serum", Count: 3, TargetSystem: SystemLOINC, TargetCode: "2951-2"},
	}
	var buf bytes.Buffer
	if err := WriteLocalMap(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), strings.Join(LocalMapColumns, ",")+"\n") {
		t.Errorf("header = %q", strings.SplitN(buf.String(), "\n", 2)[0])
	}
	got, err := ParseLocalMap(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rows[0].SourceDisplay = "'" + rows[0].SourceDisplay // formula defused
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	m, err := NewLocalMap(got)
	if err != nil || m.Len() != 1 {
		t.Errorf("NewLocalMap(template) = %v, %v; want 1 mapping (template row skipped)", m, err)
	}
}

func TestConnectionMaps(t *testing.T) {
	a, _ := NewLocalMap([]LocalMapRow{{Connection: "a", SourceSystem: epicLab, SourceCode: "1", TargetSystem: SystemLOINC, TargetCode: "718-7"}})
	all, _ := NewLocalMap([]LocalMapRow{{Connection: "*", SourceSystem: epicLab, SourceCode: "2", TargetSystem: SystemLOINC, TargetCode: "4544-3"}})
	maps := ConnectionMaps{"a": a, "*": all}
	tests := []struct {
		conn, code, want string
	}{
		{"a", "1", "718-7"},
		{"b", "1", ""}, // a's map is not b's
		{"a", "2", "4544-3"},
		{"b", "2", "4544-3"},
	}
	for _, tc := range tests {
		got, _ := maps.Lookup(tc.conn, epicLab, tc.code)
		if got.Code != tc.want {
			t.Errorf("Lookup(%q, %q) = %q, want %q", tc.conn, tc.code, got.Code, tc.want)
		}
	}
}
