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
			e := newEnv(b)
			ctx := context.Background()
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
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for tok := range toks {
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+tok)
						req.Header.Set("Content-Type", "application/json")
						t0 := time.Now()
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						d := time.Since(t0)
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "calls/s")
		})
	}
}
