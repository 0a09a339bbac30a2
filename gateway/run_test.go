package gateway_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"ehrgate/gateway"
	"ehrgate/hl7/mllp"
	"ehrgate/jobs"
	"ehrgate/store"
)

// TestRunWorksThroughJobs runs the whole gateway on the embedded store: the
// sync at start and the HL7 conversion run as jobs on the store's queue,
// the patients they store are then matched (identity_match), and
// everything is done (no job left active) when Run returns.
func TestRunWorksThroughJobs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ehr := simulatedEHR(3)
	defer ehr.Close()
	g, st, _ := newClinicGateway(t, ctx, ehr.URL)

	runCtx, stop := context.WithCancel(ctx)
	listening := make(chan net.Addr, 2)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, gateway.RunOptions{HTTPAddr: "127.0.0.1:0", SyncOnStart: true,
			MLLP: gateway.MLLPOptions{Addr: "127.0.0.1:0", Connection: "feed"},
			OnListen: func(what string, a net.Addr) {
				if what == "mllp" {
					listening <- a
				}
			}})
	}()
	var addr net.Addr
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	}
	c, err := mllp.Dial(ctx, addr.String(), mllp.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "MSH|^~\\&|ADT|NORTH|||20260101||ADT^A04^ADT_A01|R1|P|2.5.1\rPID|1||77^^^NORTH&1.2.3&ISO^MR||Doe^Jo\rPV1|1|O\r"
	if _, err := c.Send(ctx, []byte(msg)); err != nil {
		t.Fatal(err)
	}

	var quiet time.Time
	for { // the sync job and the conversion job finish (the sync's last write is the job's completion: wait for it)
		state, _, _ := gateway.LoadConnectionState(ctx, st, "clinic")
		synced := !state.LastSync.IsZero()
		counts, _ := st.HL7Counts(ctx, "feed")
		q, _ := g.Jobs(ctx)
		finished, active := 0, -1
		if list, err := q.List(ctx, jobs.Filter{States: []jobs.State{jobs.Completed}}); err == nil {
			finished = len(list)
		}
		// the patients they stored are then matched (identity_match)
		if list, err := q.List(ctx, jobs.Filter{States: []jobs.State{jobs.Available, jobs.Running, jobs.Retryable}}); err == nil {
			active = len(list)
		}
		// a kick is enqueued a moment after the job that stored: quiet
		// for longer than that before stopping
		if synced && counts.Processed == 1 && finished >= 3 && active == 0 {
			if quiet.IsZero() {
				quiet = time.Now()
			}
			if time.Since(quiet) > 1500*time.Millisecond {
				break
			}
		} else {
			quiet = time.Time{}
		}
		if ctx.Err() != nil {
			t.Fatalf("sync state saved %v, HL7 counts %+v: the jobs did not run", synced, counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := st.Get(ctx, "feed", "Patient", "NORTH-77"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	pats, err := st.SearchPatients(ctx, store.PatientQuery{Connection: "feed"})
	if err != nil || len(pats) != 1 {
		t.Errorf("HL7-sourced patients = %d, %v; want 1", len(pats), err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	q, err := g.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := q.List(ctx, jobs.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]jobs.State{}
	for _, j := range list {
		if j.State != jobs.Completed {
			t.Errorf("job %d %s is %s after Run returned", j.ID, j.Summary(), j.State)
		}
		kinds[j.Kind] = j.State
	}
	if kinds["sync"] != jobs.Completed || kinds["hl7_convert"] != jobs.Completed || kinds["identity_match"] != jobs.Completed {
		t.Errorf("jobs by kind %v; want a completed sync, hl7_convert and identity_match", kinds)
	}
}
