package cdshooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"ehrgate/cdshooks"
)

// BenchmarkOrderSign measures order-sign calls with full prefetch (the
// patient and the allergy list) over loopback HTTP into a real embedded
// store (jti records, audit trail), at increasing concurrency. JWTs are
// signed before the timer starts (signing is the EHR's work). Reports
// p50 and p99 latency per call.
//
//	go test -run '^$' -bench OrderSign -benchtime 2000x ./cdshooks
func BenchmarkOrderSign(b *testing.B) {
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			e, url, body, toks := orderSignSetup(b)
			ctx := context.Background()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			var wg sync.WaitGroup
			_ = e
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for tok := range toks {
						d, ok := postOrderSign(ctx, b, client, url, body, tok)
						if !ok {
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			reportLatency(b, lat, time.Since(start))
		})
	}
}

// BenchmarkOrderSignAtRate sends order-sign calls at a fixed rate (open
// loop: a call does not wait for the one before), the goal being
// p99 <= 20 ms at 300 calls/s.
//
//	go test -run '^$' -bench OrderSignAtRate -benchtime 3000x ./cdshooks
func BenchmarkOrderSignAtRate(b *testing.B) {
	for _, rate := range []int{100, 300} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			_, url, body, toks := orderSignSetup(b)
			ctx := context.Background()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			var wg sync.WaitGroup
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			b.ResetTimer()
			start := time.Now()
			for tok := range toks {
				<-tick.C
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, ok := postOrderSign(ctx, b, client, url, body, tok)
					if ok {
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			reportLatency(b, lat, time.Since(start))
		})
	}
}

// orderSignSetup starts the loop and returns the order-sign URL, a body
// with full prefetch (patient, allergy list; two draft orders, one
// conflicting) and b.N signed JWTs.
func orderSignSetup(b *testing.B) (*env, string, []byte, chan string) {
	b.Helper()
	e := newEnv(b)
	svc := e.service(b, cdshooks.ServiceOrderSign)
	prefetch := map[string]json.RawMessage{}
	for key, tmpl := range map[string]string{"patient": "Patient/" + patPenicillin, "allergies": "AllergyIntolerance?patient=" + patPenicillin} {
		resp, err := http.Get(e.fhir + "/" + tmpl)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		prefetch[key] = raw
	}
	c := orderContext(patPenicillin, draftOrder("a", patPenicillin, amoxicillin), draftOrder("b", patPenicillin, ibuprofen))
	delete(c, "selections")
	body, _ := json.Marshal(map[string]any{"hook": "order-sign", "hookInstance": "bench", "context": c, "prefetch": prefetch})
	url := e.svc.ServiceURL(svc.ID)
	toks := make(chan string, b.N)
	for i := 0; i < b.N; i++ {
		t, err := e.sim.Token(url)
		if err != nil {
			b.Fatal(err)
		}
		toks <- t
	}
	close(toks)
	return e, url, body, toks
}

func postOrderSign(ctx context.Context, b *testing.B, client *http.Client, url string, body []byte, tok string) (time.Duration, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return 0, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
		return 0, false
	}
	return d, true
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "calls/s")
}
