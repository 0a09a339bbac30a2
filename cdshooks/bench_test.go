package cdshooks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/cdshooks"
	"ehrgate/clients"
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

// BenchmarkOrderSignAtRate sends order-sign calls with full prefetch at
// fixed rates, open loop: call i is due at start + i/rate whether or not
// the calls before it have been answered, and its latency is counted from
// when it was due (a late start, queued behind a slow call, counts). The
// issue's goal is p99 <= 20 ms at 300 calls/s. It runs with the
// simulator's ES384 key and with an RS384 key (the two algorithms CDS
// Hooks 2.0 requires services to accept): verifying a P-384 signature is
// most of a call's CPU.
//
//	go test -run '^$' -bench OrderSignAtRate -benchtime 3000x ./cdshooks
func BenchmarkOrderSignAtRate(b *testing.B) {
	for _, alg := range []string{"ES384", "RS384"} {
		for _, rate := range []int{100, 200, 300, 400} {
			b.Run(fmt.Sprintf("alg=%s/rate=%d", alg, rate), func(b *testing.B) {
				e, url, body, toks := orderSignSetup(b)
				if alg == "RS384" {
					toks = rsaTokens(b, e, url)
				}
				ctx := context.Background()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 512}}
				// Warm the connection pool and the service (first JWKS
				// parse, first statements) outside the measurement.
				for range 8 {
					postOrderSign(ctx, b, client, url, body, <-toks)
				}
				var mu sync.Mutex
				lat := make([]time.Duration, 0, b.N)
				var wg sync.WaitGroup
				interval := time.Second / time.Duration(rate)
				cpu0 := cpuTime()
				b.ResetTimer()
				start := time.Now()
				i := 0
				for tok := range toks {
					due := start.Add(time.Duration(i) * interval)
					i++
					time.Sleep(time.Until(due))
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, ok := postOrderSign(ctx, b, client, url, body, tok); ok {
							d := time.Since(due)
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				reportLatency(b, lat, time.Since(start))
				// CPU time of the process (service and this load generator)
				// per call: a figure that a loaded machine inflates less
				// than latency.
				if len(lat) > 0 {
					b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/call")
				}
			})
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rsaTokens registers a CDS client with an RS384 key and returns b.N
// tokens it signed for url (after the 8 warm-up calls' worth).
func rsaTokens(b *testing.B, e *env, url string) chan string {
	b.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "rs1", Algorithm: "RS384", Use: "sig"}}})
	if _, err := e.reg.Add(context.Background(), clients.Client{ID: "rs-ehr", CDS: true, Issuer: "https://rs-ehr.example", JWKS: jwks}); err != nil {
		b.Fatal(err)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS384, Key: jose.JSONWebKey{Key: key, KeyID: "rs1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		b.Fatal(err)
	}
	toks := make(chan string, b.N+8)
	now := time.Now()
	for i := 0; i < b.N+8; i++ {
		tok, err := jwt.Signed(sg).Claims(jwt.Claims{Issuer: "https://rs-ehr.example", Subject: "https://rs-ehr.example",
			Audience: jwt.Audience{url}, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			ID: fmt.Sprintf("rs-%d-%d", now.UnixNano(), i)}).Serialize()
		if err != nil {
			b.Fatal(err)
		}
		toks <- tok
	}
	close(toks)
	return toks
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
	toks := make(chan string, b.N+8)
	for i := 0; i < b.N+8; i++ { // 8 more for warm-up calls
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
