package identity

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// WriteFiles writes a population as FHIR: DIR/<source>/Patient.ndjson for
// each source (ready for `ehrgate bulk import --connection <source>`), and
// the truth beside them: DIR/truth.csv (source,id,person, one line per
// record) and DIR/hard-negatives.csv (kind,person_a,person_b). It returns
// the number of records written per source.
func WriteFiles(pop *Population, dir string) (map[string]int, error) {
	files := map[string]*bufio.Writer{}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	counts := map[string]int{}
	for _, r := range pop.Records {
		w := files[r.Key.Source]
		if w == nil {
			d := filepath.Join(dir, r.Key.Source)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
			f, err := os.Create(filepath.Join(d, "Patient.ndjson"))
			if err != nil {
				return nil, err
			}
			closers = append(closers, f)
			w = bufio.NewWriter(f)
			files[r.Key.Source] = w
		}
		b, err := PatientJSON(r, MRNSystem(r.Key.Source))
		if err != nil {
			return nil, err
		}
		w.Write(b)
		w.WriteByte('\n')
		counts[r.Key.Source]++
	}
	for _, w := range files {
		if err := w.Flush(); err != nil {
			return nil, err
		}
	}
	if err := writeCSV(filepath.Join(dir, "truth.csv"), "source,id,person", len(pop.Records), func(i int) string {
		r := pop.Records[i]
		return fmt.Sprintf("%s,%s,%d", r.Key.Source, r.Key.ID, pop.Person[i])
	}); err != nil {
		return nil, err
	}
	hard := append([]HardPair(nil), pop.Hard...)
	sort.Slice(hard, func(i, j int) bool { return hard[i].A < hard[j].A })
	if err := writeCSV(filepath.Join(dir, "hard-negatives.csv"), "kind,person_a,person_b", len(hard), func(i int) string {
		return fmt.Sprintf("%s,%d,%d", hard[i].Kind, hard[i].A, hard[i].B)
	}); err != nil {
		return nil, err
	}
	for _, f := range closers {
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	closers = nil
	return counts, nil
}

func writeCSV(path, header string, n int, line func(int) string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, header)
	for i := 0; i < n; i++ {
		fmt.Fprintln(w, line(i))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
