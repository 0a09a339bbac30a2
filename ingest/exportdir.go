package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/fhir/bulk"
)

// Directory mode of an export (ExportToDir): files are written as
// received instead of being stored.

// writeFiles writes a manifest and its output and deleted files to the
// export directory. A re-export (attempt > 0) first removes what earlier
// jobs wrote for the types it asks again. A job resumed after the process
// was killed (resumed) skips the files it already got whole and continues
// a file it was in the middle of at its last byte on disk.
func (x *exporter) writeFiles(ctx context.Context, m *bulk.Manifest, attempt int, req bulk.Request, resumed bool) (Summary, error) {
	sum := Summary{Resources: map[string]int{}}
	if attempt > 0 {
		for typ, paths := range x.written {
			if len(req.Types) > 0 && !slices.Contains(req.Types, typ) {
				continue
			}
			for _, p := range paths {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					return sum, fmt.Errorf("ingest: export to a directory: removing a file asked again: %w", err)
				}
				_ = os.Remove(p + ".partial")
			}
			delete(x.written, typ)
		}
	}
	name := "manifest.json"
	if attempt > 0 {
		name = "manifest.reexport-" + strconv.Itoa(attempt) + ".json"
	}
	if err := writeFileAtomic(filepath.Join(x.dir, name), m.Raw); err != nil {
		return sum, fmt.Errorf("ingest: export to a directory: %w", err)
	}

	type task struct {
		f       bulk.OutputFile
		path    string
		deleted bool
	}
	var tasks []task
	for _, f := range m.Output {
		tasks = append(tasks, task{f: f, path: x.nextPath(f.Type)})
	}
	for _, f := range m.Deleted {
		tasks = append(tasks, task{f: f, path: x.nextPath("deleted"), deleted: true})
	}
	for _, t := range tasks {
		if !t.deleted {
			x.written[t.f.Type] = append(x.written[t.f.Type], t.path)
		}
	}
	var got map[string]fileProgress // this job's files in an earlier run
	if resumed && x.dirState != nil {
		got = x.dirState.progress()
	}
	workers := x.opts.Files
	if workers <= 0 {
		workers = 4
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, workers)
		hard error
	)
	for _, t := range tasks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			name, url := filepath.Base(t.path), stripQuery(t.f.URL)
			prev, had := got[name]
			had = had && prev.url == url
			var (
				lines, n int64
				err      error
				skipped  bool
			)
			if had && prev.done {
				lines, n, err = countFile(t.path)
				skipped = err == nil
			}
			if !skipped {
				if err = x.dirState.start(name, url); err == nil {
					lines, n, err = x.saveFile(ctx, m, t.f, t.path, had)
				}
				if err == nil {
					err = x.dirState.done(name)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if skipped {
				sum.Skipped++
			}
			sum.Files++
			sum.Bytes += n
			sum.Lines += lines
			if !t.deleted {
				sum.Resources[t.f.Type] += int(lines)
			}
			var pe *os.PathError
			switch {
			case ctx.Err() != nil:
			case errors.As(err, &pe):
				if hard == nil {
					hard = fmt.Errorf("ingest: export to a directory: %w", err)
				}
			case err != nil:
				sum.Errors = append(sum.Errors, FileError{File: stripQuery(t.f.URL), Type: t.f.Type, Error: err.Error(),
					Gone: errors.Is(err, ErrFileGone)})
			case t.f.Count != nil && lines != *t.f.Count:
				sum.Errors = append(sum.Errors, FileError{File: stripQuery(t.f.URL), Type: t.f.Type,
					Error: fmt.Sprintf("the manifest announced %d resources, the file held %d lines", *t.f.Count, lines)})
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("ingest: export to a directory: interrupted: %w", err)
	}
	return sum, hard
}

// nextPath returns the next free TYPE.N.ndjson name.
func (x *exporter) nextPath(prefix string) string {
	x.seq[prefix]++
	return filepath.Join(x.dir, prefix+"."+strconv.Itoa(x.seq[prefix])+".ndjson")
}

// createFile opens the next PREFIX.N.ndjson.partial for writing; done
// closes it and, when ok, gives it its final name.
func (x *exporter) createFile(prefix string) (io.Writer, func(ok bool) error, error) {
	path := x.nextPath(prefix)
	f, err := os.OpenFile(path+".partial", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, func(ok bool) error {
		if err := f.Close(); err != nil || !ok {
			return err
		}
		return os.Rename(path+".partial", path)
	}, nil
}

// saveFile downloads one file to path (through path.partial), resuming a
// broken transfer at the byte it reached, and returns its non-blank lines
// and bytes. With cont, a path.partial left by an earlier run of the same
// job is continued at its last byte instead of started again. A file the
// server no longer has is not retried (ErrFileGone). Local file errors are
// *os.PathError.
func (x *exporter) saveFile(ctx context.Context, m *bulk.Manifest, f bulk.OutputFile, path string, cont bool) (int64, int64, error) {
	lc := &lineCounter{}
	flags := os.O_CREATE | os.O_TRUNC | os.O_WRONLY
	if cont {
		// What the killed run wrote is a prefix of the file (the writes
		// reached the page cache before the kill): count it and append.
		if prev, err := scanFile(path + ".partial"); err == nil {
			lc = prev
			flags = os.O_WRONLY | os.O_APPEND
			x.log.InfoContext(ctx, "continuing a file the killed run was downloading", "type", f.Type, "bytes", prev.n)
		}
	}
	out, err := os.OpenFile(path+".partial", flags, 0o600)
	if err != nil {
		return 0, 0, err
	}
	lc.w = out
	var failure error
	for attempt := 1; ; attempt++ {
		rc, err := x.c.Open(ctx, m, f, lc.n)
		if err == nil {
			_, err = io.Copy(lc, rc)
			rc.Close()
		}
		failure = err
		if err == nil || ctx.Err() != nil || lc.werr != nil {
			break
		}
		if gone(err) {
			failure = fmt.Errorf("%w: %w", ErrFileGone, err)
			break
		}
		if attempt >= x.opts.MaxAttempts {
			failure = fmt.Errorf("downloading failed after %d attempts: %w", attempt, err)
			break
		}
		x.log.WarnContext(ctx, "file download failed; resuming", "type", f.Type, "attempt", attempt, "error", err)
		if err := x.opts.Sleep(ctx, time.Duration(attempt)*200*time.Millisecond); err != nil {
			break
		}
	}
	if lc.werr != nil {
		out.Close()
		return lc.lines(), lc.n, lc.werr
	}
	if err := out.Close(); err != nil {
		return lc.lines(), lc.n, err
	}
	if failure != nil {
		return lc.lines(), lc.n, failure // the .partial file stays, for inspection
	}
	if err := os.Rename(path+".partial", path); err != nil {
		return lc.lines(), lc.n, err
	}
	return lc.lines(), lc.n, nil
}

// lineCounter writes through and counts bytes and non-blank lines (as
// bulk.Reader counts them).
type lineCounter struct {
	w       io.Writer
	n       int64
	full    int64 // lines ended by a newline with something on them
	pending bool  // the current line has a non-blank byte
	werr    error // a write error (*os.PathError)
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.werr = err
	}
	for _, b := range p[:n] {
		switch b {
		case '\n':
			if c.pending {
				c.full++
			}
			c.pending = false
		case ' ', '\t', '\r':
		default:
			c.pending = true
		}
	}
	c.n += int64(n)
	return n, err
}

func (c *lineCounter) lines() int64 {
	if c.pending {
		return c.full + 1
	}
	return c.full
}

// writeFileAtomic writes b to path through a temporary file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// countFile returns a file's non-blank lines (as lineCounter counts them)
// and bytes.
func countFile(path string) (int64, int64, error) {
	lc, err := scanFile(path)
	if err != nil {
		return 0, 0, err
	}
	return lc.lines(), lc.n, nil
}

// scanFile counts a file as if it had been written through a lineCounter.
func scanFile(path string) (*lineCounter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lc := &lineCounter{w: io.Discard}
	if _, err := io.Copy(lc, f); err != nil {
		return nil, err
	}
	return lc, nil
}

// dirState keeps an export directory's job and the progress of its files
// in the directory itself, so that `bulk export --out DIR` killed with
// SIGKILL resumes like a storing export: the job in .ehrgate-export.json
// (PendingExports, written atomically), the files in
// .ehrgate-export.log, one appended line per event ("start NAME URL",
// "done NAME"; a line torn by the kill is ignored). File URLs are kept
// without their query (which may carry a signature); no token is ever
// written.
type dirState struct {
	dir string
	mu  sync.Mutex
}

// fileProgress is what an earlier run of the job did with one file.
type fileProgress struct {
	url  string
	done bool
}

type dirJob struct {
	Fingerprint string    `json:"fingerprint"`
	StatusURL   string    `json:"status_url"`
	KickedOff   time.Time `json:"kicked_off"`
}

const (
	dirJobFile = ".ehrgate-export.json"
	dirLogFile = ".ehrgate-export.log"
)

// PendingExport returns the directory's job (connection and scope are in
// the fingerprint).
func (d *dirState) PendingExport(ctx context.Context, connection, scope string) (string, string, time.Time, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, dirJobFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", "", time.Time{}, nil
	}
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("export directory: reading its job: %w", err)
	}
	var j dirJob
	if err := json.Unmarshal(b, &j); err != nil {
		return "", "", time.Time{}, nil // unreadable: as if none (a new job is kicked off)
	}
	return j.Fingerprint, j.StatusURL, j.KickedOff, nil
}

// SetPendingExport records a new job and forgets the files of any other.
func (d *dirState) SetPendingExport(ctx context.Context, connection, scope, fingerprint, statusURL string, kickedOff time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(filepath.Join(d.dir, dirLogFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export directory: %w", err)
	}
	b, err := json.Marshal(dirJob{Fingerprint: fingerprint, StatusURL: statusURL, KickedOff: kickedOff})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(d.dir, dirJobFile), b); err != nil {
		return fmt.Errorf("export directory: recording its job: %w", err)
	}
	return nil
}

// ClearPendingExport forgets the job and its files' progress.
func (d *dirState) ClearPendingExport(ctx context.Context, connection, scope string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range []string{dirJobFile, dirLogFile} {
		if err := os.Remove(filepath.Join(d.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("export directory: %w", err)
		}
	}
	return nil
}

// progress reads the files' progress by name.
func (d *dirState) progress() map[string]fileProgress {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]fileProgress{}
	b, err := os.ReadFile(filepath.Join(d.dir, dirLogFile))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "start":
			out[f[1]] = fileProgress{url: f[2]}
		case len(f) == 2 && f[0] == "done":
			if p, ok := out[f[1]]; ok {
				p.done = true
				out[f[1]] = p
			}
		}
	}
	return out
}

func (d *dirState) start(name, url string) error { return d.append("start " + name + " " + url) }
func (d *dirState) done(name string) error       { return d.append("done " + name) }

func (d *dirState) append(line string) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(d.dir, dirLogFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// A leading newline ends a line torn by a kill, if any.
	if _, err := f.WriteString("\n" + line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
