package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// WAL checkpoints off the commit path. By default SQLite checkpoints in the
// connection that commits the transaction which takes the WAL past 1,000
// pages: that commit then copies the WAL back into the database file and
// fsyncs it (tens of milliseconds on ordinary disks), and every write queued
// behind the single writer waits too: a tail in the latency of every
// write that the caller waits for (a CDS call's replay record and
// AuditEvent, an HL7 message's ACK, an API read's audit append).
//
// Instead the store checkpoints from a connection of its own every
// checkpointEvery (PASSIVE: it neither waits for nor blocks the writer or
// readers), and a committing connection's own automatic checkpoint is only
// a backstop at 16,384 pages (64 MiB, set in every connection's DSN:
// fileDSN), for when the background one cannot keep up. Durability is
// unchanged (synchronous=NORMAL in WAL mode: a committed transaction is in
// the WAL; the fsync of the database file is the checkpoint's).
// https://sqlite.org/wal.html#ckpt
const checkpointEvery = 250 * time.Millisecond

// startCheckpointer opens the checkpointing connection and runs it until
// the store closes.
func (s *Store) startCheckpointer(dsn string) error {
	ck, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("opening the checkpoint connection: %w", err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	ck.SetConnMaxIdleTime(0)
	stop := every(checkpointEvery, func() {
		// Failures (a busy checkpointer elsewhere) only delay it.
		_, _ = ck.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
	})
	s.stopCheckpoint = func() {
		stop()
		ck.Close()
	}
	return nil
}

func (s *Store) stopCheckpointer() {
	if s.stopCheckpoint != nil {
		s.stopCheckpoint()
		s.stopCheckpoint = nil
	}
}
