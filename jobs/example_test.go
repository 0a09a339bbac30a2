package jobs_test

import (
	"context"
	"log"
	"time"

	"ehrgate/jobs"
	"ehrgate/store/sqlite"
)

// SyncJob asks for one connection's sync of one scope; at most one such
// job waits or runs at a time.
type SyncJob struct {
	Connection string `json:"connection" river:"unique"`
	Scope      string `json:"scope" river:"unique"`
}

// Kind names the job kind.
func (SyncJob) Kind() string { return "sync" }

// A gateway process on the embedded store: a queue on a second handle of
// the store's file, a handler, a schedule, and an on-demand job.
func Example() {
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, "ehrgate-data")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	db, err := st.OpenJobDB(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q, err := jobs.NewSQLite(db, jobs.Options{ID: "gateway-1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := q.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	err = jobs.Register(q, func(ctx context.Context, j SyncJob) error {
		// Fetch j.Connection's charts into st; safe to run twice.
		return nil
	}, jobs.KindOptions{Queue: "sync", Timeout: 30 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	err = q.AddPeriodic(jobs.Periodic{
		ID:    "sync:epic",
		Every: time.Hour,
		Args:  func() jobs.Args { return SyncJob{Connection: "epic", Scope: "patients"} },
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() {
		stop, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		q.Stop(stop)
	}()
	e, err := q.Enqueue(ctx, SyncJob{Connection: "epic", Scope: "patients"})
	if err != nil {
		log.Fatal(err)
	}
	if e.Duplicate {
		log.Printf("a sync of epic is already waiting or running (job %d)", e.ID)
	}
}
