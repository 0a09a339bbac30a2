// Package parquet writes the store's current normalized resources as Parquet
// files partitioned Hive-style by resource type and month
// (OUT/type=Observation/date=2025-06/part-0000.parquet), so that Spark,
// Trino, DuckDB or BigQuery can query a population ehrgate pulled.
//
// Each row carries the keys and metadata (connection, type, id, version_id,
// patient_id, last_updated, fetched_at), the normalized JSON as a string and
// flattened columns most queries need (code_system, code, display,
// value_number, unit, effective, status, category). The partition date is
// the resource's clinical date (effective, onset, authoredOn, occurrence,
// performed, date, period start, recorded) and, when it has none,
// meta.lastUpdated; "unknown" when neither is known.
//
// Memory stays bounded whatever the store's size: a first pass spills rows
// per partition to temporary files (a bounded number open at once), a
// second pass writes each partition with a streaming Parquet writer, cutting
// a new part file every Options.RowsPerFile rows.
package parquet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	pq "github.com/parquet-go/parquet-go"

	"ehrgate/store"
)

// Row is one Parquet row: one current resource.
type Row struct {
	Connection  string   `parquet:"connection" json:"connection"`
	Type        string   `parquet:"type" json:"type"`
	ID          string   `parquet:"id" json:"id"`
	VersionID   string   `parquet:"version_id" json:"version_id"`
	PatientID   string   `parquet:"patient_id,optional" json:"patient_id,omitempty"`
	LastUpdated int64    `parquet:"last_updated,timestamp(millisecond)" json:"last_updated"` // ms since the epoch, 0 when unknown
	FetchedAt   int64    `parquet:"fetched_at,timestamp(millisecond)" json:"fetched_at"`
	Normalized  string   `parquet:"normalized" json:"normalized"`
	CodeSystem  string   `parquet:"code_system,optional" json:"code_system,omitempty"`
	Code        string   `parquet:"code,optional" json:"code,omitempty"`
	Display     string   `parquet:"display,optional" json:"display,omitempty"`
	ValueNumber *float64 `parquet:"value_number,optional" json:"value_number,omitempty"`
	Unit        string   `parquet:"unit,optional" json:"unit,omitempty"`
	Effective   string   `parquet:"effective,optional" json:"effective,omitempty"`
	Status      string   `parquet:"status,optional" json:"status,omitempty"`
	Category    string   `parquet:"category,optional" json:"category,omitempty"` // comma-separated
}

// Options configure Export.
type Options struct {
	Out         string // output directory (created)
	Connection  string // only this connection ("" = all)
	RowsPerFile int    // rows per part file (default 500,000)
	MaxOpen     int    // spill files open at once (default 64)
}

// Summary reports an export.
type Summary struct {
	Rows       int      `json:"rows"`
	Files      int      `json:"files"`
	Partitions []string `json:"partitions"` // relative directories, sorted
}

// Export writes every current resource of src under opts.Out.
func Export(ctx context.Context, src store.CurrentScanner, opts Options) (Summary, error) {
	var sum Summary
	if opts.Out == "" {
		return sum, errors.New("parquet: an output directory is required")
	}
	if opts.RowsPerFile <= 0 {
		opts.RowsPerFile = 500_000
	}
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 64
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return sum, fmt.Errorf("creating %s: %w", opts.Out, err)
	}
	spillDir, err := os.MkdirTemp(opts.Out, ".spill-")
	if err != nil {
		return sum, fmt.Errorf("creating spill directory: %w", err)
	}
	defer os.RemoveAll(spillDir)

	sp := &spiller{dir: spillDir, max: opts.MaxOpen, open: map[string]*spillFile{}, files: map[string]string{}}
	err = src.ScanCurrent(ctx, func(rec store.Record) error {
		if opts.Connection != "" && rec.Connection != opts.Connection {
			return nil
		}
		row, date := Flatten(rec)
		sum.Rows++
		return sp.add(partition(row.Type, date), row)
	})
	if cerr := sp.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return sum, fmt.Errorf("parquet: reading the store: %w", err)
	}
	parts := make([]string, 0, len(sp.files))
	for p := range sp.files {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := writePartition(filepath.Join(opts.Out, p), sp.files[p], opts.RowsPerFile)
		if err != nil {
			return sum, fmt.Errorf("parquet: writing %s: %w", p, err)
		}
		sum.Files += n
	}
	sum.Partitions = parts
	return sum, nil
}

// partition is the Hive-style relative directory of a row.
func partition(typ, date string) string {
	return "type=" + safe(typ) + "/date=" + safe(date)
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == '=' || r < ' ' || r == '.' {
			return '_'
		}
		return r
	}, s)
}

// Flatten turns a stored record into a row and its partition date
// ("YYYY-MM" or "unknown").
func Flatten(rec store.Record) (Row, string) {
	row := Row{Connection: rec.Connection, Type: rec.Type, ID: rec.ID, VersionID: rec.VersionID, PatientID: rec.PatientID,
		LastUpdated: millis(rec.LastUpdated), FetchedAt: millis(rec.FetchedAt), Normalized: string(rec.Normalized)}
	var n struct {
		Status     string          `json:"status"`
		Category   json.RawMessage `json:"category"`
		Code       *concept        `json:"code"`
		Medication *concept        `json:"medication"`
		Substance  *concept        `json:"substance"`
		Vaccine    *concept        `json:"vaccine"`
		TypeC      json.RawMessage `json:"type"`
		Value      *struct {
			Number *float64 `json:"number"`
			Unit   string   `json:"unit"`
		} `json:"value"`
		Effective  string `json:"effective"`
		Onset      string `json:"onset"`
		AuthoredOn string `json:"authoredOn"`
		Occurrence string `json:"occurrence"`
		Performed  string `json:"performed"`
		Date       string `json:"date"`
		Start      string `json:"start"`
		Recorded   string `json:"recorded"`
	}
	_ = json.Unmarshal(rec.Normalized, &n) // a partial decode still fills what it can
	row.Status = n.Status
	for _, c := range []*concept{n.Code, n.Medication, n.Substance, n.Vaccine, typeConcept(n.TypeC)} {
		if c != nil && (c.Code != "" || c.Text != "") {
			row.CodeSystem, row.Code, row.Display = c.System, c.Code, c.Display
			if row.Display == "" {
				row.Display = c.Text
			}
			break
		}
	}
	if n.Value != nil {
		row.ValueNumber, row.Unit = n.Value.Number, n.Value.Unit
	}
	row.Category = categories(n.Category)
	for _, d := range []string{n.Effective, n.Onset, n.AuthoredOn, n.Occurrence, n.Performed, n.Date, n.Start, n.Recorded} {
		if d != "" {
			row.Effective = d
			break
		}
	}
	date := "unknown"
	switch {
	case len(row.Effective) >= 7:
		date = row.Effective[:7]
	case len(row.Effective) == 4:
		date = row.Effective + "-01"
	case !rec.LastUpdated.IsZero():
		date = rec.LastUpdated.UTC().Format("2006-01")
	}
	return row, date
}

type concept struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
	Text    string `json:"text"`
}

func typeConcept(raw json.RawMessage) *concept {
	var c concept
	if len(raw) == 0 || json.Unmarshal(raw, &c) != nil {
		return nil
	}
	return &c
}

func categories(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ",")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one
	}
	var concepts []concept
	if json.Unmarshal(raw, &concepts) == nil {
		var out []string
		for _, c := range concepts {
			if c.Code != "" {
				out = append(out, c.Code)
			} else if c.Text != "" {
				out = append(out, c.Text)
			}
		}
		return strings.Join(out, ",")
	}
	return ""
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// spiller appends rows as JSON lines to one temporary file per partition,
// keeping at most max files open.
type spiller struct {
	dir   string
	max   int
	seq   int
	tick  int
	open  map[string]*spillFile
	files map[string]string // partition -> spill path
}

type spillFile struct {
	f    *os.File
	w    *bufio.Writer
	enc  *json.Encoder
	used int
}

func (s *spiller) add(part string, row Row) error {
	sf := s.open[part]
	if sf == nil {
		if len(s.open) >= s.max {
			if err := s.evict(); err != nil {
				return err
			}
		}
		path, ok := s.files[part]
		if !ok {
			s.seq++
			path = filepath.Join(s.dir, fmt.Sprintf("%06d.jsonl", s.seq))
			s.files[part] = path
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("opening spill file: %w", err)
		}
		w := bufio.NewWriterSize(f, 32<<10)
		sf = &spillFile{f: f, w: w, enc: json.NewEncoder(w)}
		s.open[part] = sf
	}
	s.tick++
	sf.used = s.tick
	if err := sf.enc.Encode(row); err != nil {
		return fmt.Errorf("spilling row: %w", err)
	}
	return nil
}

func (s *spiller) evict() error {
	var oldest string
	for p, sf := range s.open {
		if oldest == "" || sf.used < s.open[oldest].used {
			oldest = p
		}
	}
	sf := s.open[oldest]
	delete(s.open, oldest)
	return closeSpill(sf)
}

func closeSpill(sf *spillFile) error {
	if err := sf.w.Flush(); err != nil {
		sf.f.Close()
		return fmt.Errorf("flushing spill file: %w", err)
	}
	return sf.f.Close()
}

func (s *spiller) closeAll() error {
	var errs []error
	for p, sf := range s.open {
		errs = append(errs, closeSpill(sf))
		delete(s.open, p)
	}
	return errors.Join(errs...)
}

// writePartition streams one spill file into part files under dir and
// returns how many it wrote.
func writePartition(dir, spill string, rowsPerFile int) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	in, err := os.Open(spill)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
	files := 0
	var out *os.File
	var w *pq.GenericWriter[Row]
	rows := 0
	finish := func() error {
		if w == nil {
			return nil
		}
		err := errors.Join(w.Close(), out.Close())
		w, out = nil, nil
		return err
	}
	batch := make([]Row, 0, 1024)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := w.Write(batch)
		batch = batch[:0]
		return err
	}
	for {
		var r Row
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, fmt.Errorf("reading spill: %w", err)
		}
		if w == nil {
			out, err = os.Create(filepath.Join(dir, fmt.Sprintf("part-%04d.parquet", files)))
			if err != nil {
				return files, err
			}
			w = pq.NewGenericWriter[Row](out, pq.Compression(&pq.Zstd))
			files++
			rows = 0
		}
		batch = append(batch, r)
		rows++
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return files, err
			}
		}
		if rows == rowsPerFile {
			if err := flush(); err != nil {
				return files, err
			}
			if err := finish(); err != nil {
				return files, err
			}
		}
	}
	if w != nil {
		if err := flush(); err != nil {
			return files, err
		}
	}
	return files, finish()
}
