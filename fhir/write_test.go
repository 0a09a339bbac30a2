package fhir

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestWriteRequests(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/fhir/Flag":
			if r.Header.Get("If-None-Exist") != "identifier=urn%3Ax%7C1" || r.Header.Get("Content-Type") != "application/fhir+json" || string(body) != `{"resourceType":"Flag"}` {
				t.Errorf("create: headers %v body %s", r.Header, body)
			}
			w.Header().Set("ETag", `W/"1"`)
			w.Header().Set("Location", "http://x/fhir/Flag/1/_history/1")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"resourceType":"Flag","id":"1"}`))
		case r.Method == http.MethodPut && r.URL.Path == "/fhir/Flag/1":
			if r.Header.Get("If-Match") != `W/"1"` {
				t.Errorf("update: If-Match %q", r.Header.Get("If-Match"))
			}
			WriteOutcome(w, http.StatusPreconditionFailed, "error", "conflict", "stale")
		case r.URL.Path == "/fhir/Task":
			WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "down")
		default:
			panic(http.ErrAbortHandler) // the answer is lost
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL+"/fhir", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := c.Create(ctx, "Flag", []byte(`{"resourceType":"Flag"}`), "identifier=urn%3Ax%7C1")
	if err != nil || resp.Status != 201 || resp.ETag != `W/"1"` || resp.Location == "" {
		t.Fatalf("Create = %+v, %v; want 201 with ETag and Location", resp, err)
	}
	_, err = c.Update(ctx, "Flag", "1", []byte(`{"resourceType":"Flag","id":"1"}`), `W/"1"`)
	var fe *Error
	if !errors.Is(err, ErrPreconditionFailed) || !errors.As(err, &fe) || fe.Outcome == nil {
		t.Errorf("Update = %v, want a 412 *Error with its OperationOutcome", err)
	}
	before := calls.Load()
	if _, err := c.Create(ctx, "Task", []byte(`{}`), ""); !errors.Is(err, ErrServer) {
		t.Errorf("Create on a 503 = %v, want ErrServer", err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Errorf("a 503 on a write was sent %d times, want once (the caller retries)", n)
	}
	if _, err := c.Create(ctx, "Other", []byte(`{}`), ""); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("Create with a dropped connection = %v, want ErrNoAnswer", err)
	}
}
