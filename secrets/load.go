package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Environment variables read by Load.
const (
	EnvKEK     = "EHRGATE_KEK"      // base64 of 32 bytes: the primary KEK
	EnvKEKOld  = "EHRGATE_KEK_OLD"  // comma-separated base64 KEKs still accepted for reading
	EnvKEKFile = "EHRGATE_KEK_FILE" // a key file (one base64 KEK a line, last is primary)
)

// DefaultKEKFile is the key file Load creates in the data directory when no
// KEK is configured (demo and single-host installs).
const DefaultKEKFile = "kek"

// Source says where a keyring came from.
type Source struct {
	Ring      *Keyring
	File      string // key file path; "" when the KEK came from the environment
	Generated bool   // Load created File because no KEK was configured
}

// Load builds the keyring from, in order: EHRGATE_KEK (+ EHRGATE_KEK_OLD),
// EHRGATE_KEK_FILE, or DATA/kek, generating DATA/kek (mode 0600) when none
// exists. getenv is os.Getenv in production. A file-backed keyring re-reads
// its file when it changes, so `ehrgate keys rotate-kek` in another process
// takes effect without a restart.
func Load(getenv func(string) string, dataDir string) (*Source, error) {
	if v := strings.TrimSpace(getenv(EnvKEK)); v != "" {
		primary, err := parseKEK(v)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", EnvKEK, err)
		}
		var older []KEK
		for _, o := range strings.Split(getenv(EnvKEKOld), ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			k, err := parseKEK(o)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", EnvKEKOld, err)
			}
			older = append(older, k)
		}
		return &Source{Ring: NewKeyring(primary, older...)}, nil
	}
	path := strings.TrimSpace(getenv(EnvKEKFile))
	generated := false
	if path == "" {
		path = filepath.Join(dataDir, DefaultKEKFile)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			k, err := GenerateKEK()
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("creating data directory: %w", err)
			}
			if err := WriteKeyFile(path, []KEK{k}); err != nil {
				return nil, err
			}
			generated = true
		}
	}
	ring, err := watchFile(path)
	if err != nil {
		return nil, err
	}
	return &Source{Ring: ring, File: path, Generated: generated}, nil
}

func parseKEK(s string) (KEK, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		// Never echo the value: it is a key.
		return KEK{}, errors.New("a KEK must be standard base64 of 32 bytes")
	}
	return NewKEK(b)
}

// ReadKeyFile reads a key file: one base64 KEK a line, blank lines and
// lines starting with # ignored; the last key is the primary.
func ReadKeyFile(path string) (primary KEK, older []KEK, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return KEK{}, nil, fmt.Errorf("reading key file: %w", err)
	}
	var keys []KEK
	for i, line := range bytes.Split(b, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := parseKEK(s)
		if err != nil {
			return KEK{}, nil, fmt.Errorf("reading key file %s line %d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return KEK{}, nil, fmt.Errorf("reading key file %s: no key", path)
	}
	return keys[len(keys)-1], keys[:len(keys)-1], nil
}

// WriteKeyFile atomically writes keys (the last is the primary) to path
// with mode 0600.
func WriteKeyFile(path string, keys []KEK) error {
	var b strings.Builder
	b.WriteString("# ehrgate key-encryption keys: one base64 key a line; the last is primary. Keep this file secret.\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k.key))
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	return nil
}

// fileWatch reloads a keyring from its file when the file changes.
type fileWatch struct {
	path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
}

func watchFile(path string) (*Keyring, error) {
	primary, older, err := ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	ring := NewKeyring(primary, older...)
	w := &fileWatch{path: path}
	if fi, err := os.Stat(path); err == nil {
		w.modTime, w.size = fi.ModTime(), fi.Size()
	}
	ring.reload = func() {
		fi, err := os.Stat(w.path)
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if fi.ModTime().Equal(w.modTime) && fi.Size() == w.size {
			return
		}
		p, o, err := ReadKeyFile(w.path)
		if err != nil {
			return // keep the keys we have; the next use retries
		}
		// Keys previously held stay accepted for reading in this process.
		ring.mu.RLock()
		for _, k := range ring.all {
			o = append(o, k)
		}
		ring.mu.RUnlock()
		ring.Set(p, o...)
		w.modTime, w.size = fi.ModTime(), fi.Size()
	}
	return ring, nil
}
