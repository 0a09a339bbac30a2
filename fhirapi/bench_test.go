package fhirapi_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/fhirapi"
	"ehrgate/ingest"
	"ehrgate/server"
	"ehrgate/store"
	"ehrgate/synth"
)

// benchStore returns a store holding $EHRGATE_BENCH_PATIENTS (default
// 10,000) synthetic patients on connection "bench", ingested through the
// Bulk Data path; it is kept in $EHRGATE_BENCH_API_DIR (default a
// directory under the system temp dir) and reused by later runs.
func benchStore(b *testing.B) (store.Backend, *synth.Generator) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("EHRGATE_BENCH_PATIENTS")); err == nil && v > 0 {
		n = v
	}
	gen := synth.New(synth.Options{Patients: n, Seed: 11})
	dir := os.Getenv("EHRGATE_BENCH_API_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("ehrgate-api-bench-%d", n))
	}
	ctx := context.Background()
	ready := filepath.Join(dir, "ready")
	if _, err := os.Stat(ready); err != nil {
		os.RemoveAll(dir)
		nd := filepath.Join(dir, "ndjson")
		if _, err := gen.WriteNDJSON(nd); err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "store"), store.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		files, _, err := ingest.LocalFiles([]string{nd})
		if err != nil {
			b.Fatal(err)
		}
		in, err := ingest.New(st, ingest.Options{Connection: "bench", Job: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		sum, err := in.Run(ctx, files)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d resources of %d patients in %s", sum.Lines, n, time.Since(start).Round(time.Second))
		st.Close()
		os.RemoveAll(nd)
		if err := os.WriteFile(ready, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "store"), store.OpenOptions{MustExist: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, gen
}

// BenchmarkAPI measures the API as apps use it, over real HTTP on
// loopback with 8 concurrent clients, each request's token verified
// (ES256) and its AuditEvent committed to the store before the answer:
// reads of Patients and Observations by id, and the searches apps make.
// Reports requests/s and latency percentiles.
//
//	go test -run '^$' -bench API -benchtime 20000x ./fhirapi
func BenchmarkAPI(b *testing.B) {
	st, gen := benchStore(b)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience,
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}})
	if err != nil {
		b.Fatal(err)
	}
	api, err := fhirapi.New(fhirapi.Options{Store: st, Auth: v, Audit: audit.NewLog(st, audit.Source{InstanceID: "bench"}, nil),
		BaseURL: audience, Connections: map[string]string{"bench": "https://ehr.bench/fhir"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Routes: api.Routes()}).Handler())
	defer srv.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	tok, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuer, Audience: jwt.Audience{audience}, Subject: "bench",
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}).
		Claims(map[string]any{"scope": "system/*.rs", "client_id": "bench"}).Serialize()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	n := gen.Patients()
	pid := func(i int) string { return "bench." + gen.PatientID(i%n) }
	cases := []struct {
		name string
		path func(i int) string
	}{
		{"read/Patient", func(i int) string { return "/fhir/Patient/" + pid(i*7919) }},
		{"read/Observation", func(i int) string { return "/fhir/Observation/" + pid(i*7919) + "-obs-001" }},
		{"search/labs-of-a-patient", func(i int) string {
			return "/fhir/Observation?patient=" + pid(i*7919) + "&category=laboratory&_count=50"
		}},
		{"search/vitals-since", func(i int) string {
			return "/fhir/Observation?patient=" + pid(i*7919) + "&category=vital-signs&date=ge2020-01-01&_sort=-date&_count=20"
		}},
		{"search/active-conditions", func(i int) string {
			return "/fhir/Condition?patient=" + pid(i*7919) + "&clinical-status=active"
		}},
		{"search/patient-by-id-and-include", func(i int) string {
			return "/fhir/Patient?_id=" + pid(i*7919) + "&_revinclude=AllergyIntolerance:patient"
		}},
		{"everything", func(i int) string { return "/fhir/Patient/" + pid(i*7919) + "/$everything?_count=100" }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := processCPU()
			start := time.Now()
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						req, _ := http.NewRequest("GET", srv.URL+c.path(i), nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						t0 := time.Now()
						resp, err := client.Do(req)
						if err != nil {
							failed.Add(1)
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						lat[i] = time.Since(t0)
						if resp.StatusCode != 200 {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			cpu := processCPU() - cpu0
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d of %d requests failed", f, b.N)
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
			b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			// CPU time of the process (server and clients) per request:
			// unlike latency, it hardly changes with load from elsewhere.
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExportServe measures $export serving: one system-level export
// of every type, each file downloaded over loopback HTTP and counted
// line by line, with token checks on (system/*.rs). Reports resources/s
// of NDJSON and the process's peak RSS.
//
//	go test -run '^$' -bench ExportServe -benchtime 1x ./fhirapi
func BenchmarkExportServe(b *testing.B) {
	st, _ := benchStore(b)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, _ := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience,
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}})
	api, err := fhirapi.New(fhirapi.Options{Store: st, Auth: v, Audit: audit.NewLog(st, audit.Source{InstanceID: "bench"}, nil),
		Docs: st, BaseURL: audience, Connections: map[string]string{"bench": "https://ehr.bench/fhir"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Routes: api.Routes()}).Handler())
	defer srv.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	tok, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuer, Audience: jwt.Audience{audience}, Subject: "bench",
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}).
		Claims(map[string]any{"scope": "system/*.rs", "client_id": "bench"}).Serialize()
	do := func(method, u string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	for i := 0; i < b.N; i++ {
		resp := do("GET", srv.URL+"/fhir/$export", map[string]string{"Accept": "application/fhir+json", "Prefer": "respond-async"})
		resp.Body.Close()
		status := resp.Header.Get("Content-Location")
		resp = do("GET", srv.URL+"/fhir"+strings.TrimPrefix(status, audience), nil)
		var m struct{ Output []struct{ URL string } }
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		start, cpu0 := time.Now(), processCPU()
		lines, bytes := 0, int64(0)
		for _, o := range m.Output {
			resp := do("GET", srv.URL+"/fhir"+strings.TrimPrefix(o.URL, audience), nil)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				lines++
				bytes += int64(len(sc.Bytes())) + 1
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || sc.Err() != nil {
				b.Fatalf("file %s: %d %v", o.URL, resp.StatusCode, sc.Err())
			}
		}
		el, cpu := time.Since(start), processCPU()-cpu0
		b.ReportMetric(float64(lines)/el.Seconds(), "resources/s")
		// CPU per resource (server and client in this process) says more
		// than the rate on a machine other work shares.
		b.ReportMetric(float64(cpu.Microseconds())/float64(lines), "cpu-µs/resource")
		b.ReportMetric(float64(bytes)/el.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.Logf("%d resources, %.0f MiB in %s", lines, float64(bytes)/(1<<20), el.Round(time.Millisecond))
	}
}

// peakRSS reads VmHWM from /proc/self/status (bytes; 0 when unavailable).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
