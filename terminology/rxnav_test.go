package terminology

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestRxNavLookup(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/rxcui.json" || r.URL.Query().Get("idtype") != "NDC" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("id") == "00093111101" {
			w.Write([]byte(`{"idGroup":{"idType":"NDC","id":"00093111101","rxnormId":["314076"]}}`))
			return
		}
		w.Write([]byte(`{"idGroup":{"idType":"NDC"}}`))
	}))
	defer srv.Close()
	x := &RxNav{BaseURL: srv.URL, Client: srv.Client()}
	ctx := context.Background()
	for range 2 {
		cui, ok, err := x.LookupNDC(ctx, "0093-1111-01")
		if err != nil || !ok || cui != "314076" {
			t.Fatalf("LookupNDC = %q, %v, %v", cui, ok, err)
		}
	}
	if _, ok, err := x.LookupNDC(ctx, "12345-6789-01"); ok || err != nil {
		t.Errorf("LookupNDC(unknown) = %v, %v", ok, err)
	}
	if calls.Load() != 2 {
		t.Errorf("server called %d times, want 2 (answers cached)", calls.Load())
	}
	srv.Close()
	if _, _, err := (&RxNav{BaseURL: srv.URL}).LookupNDC(ctx, "12345-6789-02"); err == nil {
		t.Errorf("LookupNDC with the service down = nil error")
	}
}
