package ingest

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LocalFiles expands paths (files and directories, searched recursively for
// *.ndjson, *.jsonl and their .gz forms) into ingest inputs, sorted by path,
// and returns a job id that identifies this exact set of files (paths,
// sizes and modification times): re-running the same import resumes or
// skips, while changed files make a new job.
func LocalFiles(paths []string) ([]File, string, error) {
	var names []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, "", fmt.Errorf("reading %s: %w", p, err)
		}
		if !info.IsDir() {
			names = append(names, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isNDJSON(path) {
				names = append(names, path)
			}
			return nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("listing %s: %w", p, err)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	files := make([]File, 0, len(names))
	for _, n := range names {
		abs, err := filepath.Abs(n)
		if err != nil {
			return nil, "", fmt.Errorf("resolving %s: %w", n, err)
		}
		info, err := os.Stat(abs)
		if err != nil {
			return nil, "", fmt.Errorf("reading %s: %w", n, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", abs, info.Size(), info.ModTime().UnixNano())
		size := info.Size()
		if strings.HasSuffix(strings.ToLower(abs), ".gz") {
			size = -1 // decompressed size unknown
		}
		files = append(files, File{Name: abs, Count: -1, Size: size, Open: openLocal(abs)})
	}
	return files, "import:" + hex.EncodeToString(h.Sum(nil)[:12]), nil
}

func isNDJSON(path string) bool {
	p := strings.TrimSuffix(strings.ToLower(path), ".gz")
	return strings.HasSuffix(p, ".ndjson") || strings.HasSuffix(p, ".jsonl")
}

// openLocal opens a file at a decompressed offset: by seeking for plain
// files, by decompressing and discarding for .gz.
func openLocal(path string) func(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", filepath.Base(path), err)
		}
		if !strings.HasSuffix(strings.ToLower(path), ".gz") {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("seeking %s: %w", filepath.Base(path), err)
			}
			return f, nil
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening gzip %s: %w", filepath.Base(path), err)
		}
		if _, err := io.CopyN(io.Discard, zr, offset); err != nil {
			f.Close()
			return nil, fmt.Errorf("skipping to offset %d in %s: %w", offset, filepath.Base(path), err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
}
