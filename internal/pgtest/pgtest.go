// Package pgtest starts a throwaway PostgreSQL cluster for tests.
//
// Docker is not assumed. The cluster is created with the machine's own
// initdb and pg_ctl in a temporary directory, listening only on a unix socket
// and a loopback port, and removed when the test binary exits. initdb refuses
// to run as root, so when the tests run as root the server runs as the
// `postgres` system user. Set EHRGATE_TEST_POSTGRES_DSN to use an existing
// server instead.
//
// Each call to NewDatabase creates a fresh, empty database on the shared
// cluster, so tests do not see each other's data.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names an existing server to use instead of starting one.
const EnvDSN = "EHRGATE_TEST_POSTGRES_DSN"

var (
	once     sync.Once
	adminDSN string
	startErr error
	cleanup  func()
)

// NewDatabase returns the DSN of a new empty database. It skips the test
// with a clear message when no PostgreSQL server can be started here.
func NewDatabase(t testing.TB) string {
	t.Helper()
	once.Do(func() { adminDSN, cleanup, startErr = start() })
	if startErr != nil {
		t.Skipf("PostgreSQL not available: %v (install postgresql, or set %s)", startErr, EnvDSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "ehrgate_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database: %v", err)
	}
	return replaceDB(adminDSN, name)
}

// Stop shuts the shared cluster down; call it from TestMain after m.Run.
func Stop() {
	if cleanup != nil {
		cleanup()
	}
}

func replaceDB(dsn, db string) string {
	// Keyword/value DSN: replace or add dbname.
	parts := strings.Fields(dsn)
	out := parts[:0]
	for _, p := range parts {
		if !strings.HasPrefix(p, "dbname=") {
			out = append(out, p)
		}
	}
	return strings.Join(append(out, "dbname="+db), " ")
}

func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found", name)
}

func start() (string, func(), error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, nil, nil
	}
	initdb, err := findBin("initdb")
	if err != nil {
		return "", nil, err
	}
	pgctl, err := findBin("pg_ctl")
	if err != nil {
		return "", nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, errors.New("running as root and there is no postgres user to run the server")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "ehrgate-pg-")
	if err != nil {
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", nil, err
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
	if err := run(pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		_ = run(pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
	return dsn, stop, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// NewDatabaseURL is NewDatabase as a postgres:// URL, the form ehrgate's
// --store flag takes.
func NewDatabaseURL(t testing.TB) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatalf("parsing the test database DSN: %v", err)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), Path: "/" + cfg.Database}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	} else {
		u.User = url.User(cfg.User)
	}
	if cfg.TLSConfig == nil {
		u.RawQuery = "sslmode=disable"
	}
	return u.String()
}
