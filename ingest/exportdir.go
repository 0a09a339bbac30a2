package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"ehrgate/fhir/bulk"
)

// Directory mode of an export (ExportToDir): files are written as
// received instead of being stored.

// writeFiles writes a manifest and its output and deleted files to the
// export directory. A re-export (attempt > 0) first removes what earlier
// jobs wrote for the types it asks again.
func (x *exporter) writeFiles(ctx context.Context, m *bulk.Manifest, attempt int, req bulk.Request) (Summary, error) {
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
			lines, n, err := x.saveFile(ctx, m, t.f, t.path)
			mu.Lock()
			defer mu.Unlock()
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
// and bytes. A file the server no longer has is not retried (ErrFileGone).
// Local file errors are *os.PathError.
func (x *exporter) saveFile(ctx context.Context, m *bulk.Manifest, f bulk.OutputFile, path string) (int64, int64, error) {
	out, err := os.OpenFile(path+".partial", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	lc := &lineCounter{w: out}
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
