package store

import (
	"context"
	"time"
)

// Document kinds the gateway keeps (Documents). A kind groups documents of
// one shape; names are unique within a kind.
const (
	// DocConnectionState is what the gateway remembers about a connection
	// between runs: what it turned out to be, how its last sync and bulk
	// exports went, which scopes the EHR did not grant.
	DocConnectionState = "connection-state"
	// DocProbeReport is the latest compatibility probe of a connection.
	DocProbeReport = "probe-report"
	// DocClient is a registered app or CDS client (package clients).
	DocClient = "client"
)

// Document is a small JSON document the service keeps by kind and name.
type Document struct {
	Kind      string
	Name      string
	Body      []byte
	UpdatedAt time.Time
}

// Documents keeps small documents the service remembers between runs and
// shares between processes on one store (connection state, probe reports).
// Documents hold no secrets and no patient data: the store does not
// encrypt them.
//
// GetDocument returns ErrNotFound when there is none. UpdateDocument runs
// fn on the current body (nil when there is none) and stores what it
// returns, atomically: concurrent updates of one document, also from other
// processes, run one after the other, each seeing the previous one's
// result; when fn fails nothing is written and its error is returned as it
// is. ListDocuments returns the names of a kind's documents in byte order.
// DeleteDocument removes one and reports whether there was one.
type Documents interface {
	GetDocument(ctx context.Context, kind, name string) (Document, error)
	UpdateDocument(ctx context.Context, kind, name string, fn func(old []byte) ([]byte, error)) error
	ListDocuments(ctx context.Context, kind string) ([]string, error)
	DeleteDocument(ctx context.Context, kind, name string) (bool, error)
}
