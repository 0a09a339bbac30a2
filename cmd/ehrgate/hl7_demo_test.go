package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoTakesHL7BesideFHIR runs the demo with its simulated HL7 v2 feed:
// messages arrive over MLLP, are stored durably and converted to FHIR under
// the hl7 connection, and their events reach the server-sent-events stream.
func TestDemoTakesHL7BesideFHIR(t *testing.T) {
	d := startDemo(t, 4, "--hl7-feed", "--log-level", "warn")

	// The event stream delivers events as the feed arrives.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/events/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("/events/stream content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	gotEvent := false
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &ev); err != nil {
				t.Fatalf("event is not JSON: %v: %s", err, line)
			}
			gotEvent = true
			break
		}
	}
	if !gotEvent {
		t.Fatal("no event arrived on /events/stream")
	}

	// Converted resources land in the store under the hl7 connection.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, err := run(t, context.Background(), "stats", "--data", d.data, "--json", "--log-level", "error")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Connections map[string]struct {
				Resources map[string]int `json:"resources"`
			} `json:"connections"`
		}
		_ = json.Unmarshal([]byte(out), &st)
		h := st.Connections["hl7"].Resources
		if h["Patient"] > 0 && h["Encounter"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HL7-sourced Patient and Encounter stored: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
