package mllp_test

import (
	"context"
	"log/slog"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
)

// storeFunc stands in for a durable store.
func storeFunc(ctx context.Context, msg *hl7.Message) error {
	// Commit msg.Bytes() keyed by (MSH-3, MSH-4, MSH-10); return
	// mllp.ErrDuplicate on a unique-key conflict.
	return nil
}

func ExampleServer() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &mllp.Server{
		Addr:        "127.0.0.1:0",
		Handler:     mllp.HandlerFunc(storeFunc),
		AckMode:     mllp.AckOriginal,
		QueueSize:   64,
		IdleTimeout: 5 * time.Minute,
		Logger:      slog.Default(),
	}
	go func() { _ = srv.ListenAndServe(ctx) }()
	// ... on termination:
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
}
