package cdshooks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/clients"
	"ehrgate/store"
)

// FuzzParseRequest: any body either parses into a request whose context
// checks, draft reading and prefetch substitution run without panicking,
// or is refused with ErrBadRequest. (TestParseRequestErrors checks that
// errors never quote the access token.)
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"hookInstance":"d1577c69","fhirServer":"http://hooks.smarthealthit.org:9080","hook":"patient-view","fhirAuthorization":{"access_token":"some-opaque-fhir-access-token","token_type":"Bearer","expires_in":300,"scope":"user/Patient.read user/Observation.read","subject":"cds-service4"},"context":{"userId":"Practitioner/example","patientId":"1288992","encounterId":"89284"},"prefetch":{"patientToGreet":{"resourceType":"Patient","gender":"male","birthDate":"1925-12-23","id":"1288992","active":true}}}`,
		`{"hook":"order-select","hookInstance":"x","context":{"userId":"PractitionerRole/123","patientId":"1288992","selections":["MedicationRequest/m1"],"draftOrders":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"MedicationRequest","id":"m1","status":"draft","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"617993","display":"Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"}]},"subject":{"reference":"Patient/1288992"}}}]}}}`,
		`{"hook":"medication-prescribe","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p","medications":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"MedicationRequest","medicationCodeableConcept":{"text":"amoxicillin"}}}]}}}`,
		`{"hook":"h","hookInstance":"x","context":{},"prefetch":{"p":null}}`,
		`{"hook":"h","hookInstance":"x","context":{},"fhirAuthorization":{"access_token":"secret"}}`,
		`{}`, `[]`, `null`, `{"context":{"patientId":{"a":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Service{know: BundledKnowledge()}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ParseRequest error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		_ = req.CheckContext()
		if ds, err := s.drafts(req); err == nil {
			s.know.Check(ds, nil)
		}
		_, _ = Substitute(allergyTemplate, req)
		_, _ = Substitute("X?a={{context.patientId}}&b={{userPractitionerId}}&c={{context.encounterId}}", req)
	})
}

// memDocs is an in-memory store.Documents for tests of this package.
type memDocs struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (d *memDocs) GetDocument(_ context.Context, kind, name string) (store.Document, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.m[kind+"\x00"+name]
	if !ok {
		return store.Document{}, store.ErrNotFound
	}
	return store.Document{Kind: kind, Name: name, Body: b}, nil
}

func (d *memDocs) UpdateDocument(_ context.Context, kind, name string, fn func(old []byte) ([]byte, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string][]byte{}
	}
	b, err := fn(d.m[kind+"\x00"+name])
	if err != nil {
		return err
	}
	d.m[kind+"\x00"+name] = b
	return nil
}

func (d *memDocs) ListDocuments(_ context.Context, kind string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k := range d.m {
		if strings.HasPrefix(k, kind+"\x00") {
			out = append(out, strings.TrimPrefix(k, kind+"\x00"))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *memDocs) DeleteDocument(_ context.Context, kind, name string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[kind+"\x00"+name]
	delete(d.m, kind+"\x00"+name)
	return ok, nil
}

var _ store.Documents = (*memDocs)(nil)

// FuzzVerifyJWT: no bearer token, however malformed, panics the verifier
// or is accepted without a key of the registered client.
func FuzzVerifyJWT(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k", Algorithm: "ES384"}}})
	docs := &memDocs{}
	reg := clients.NewRegistry(docs)
	if _, err := reg.Add(context.Background(), clients.Client{ID: "ehr", CDS: true, JWKS: jwks}); err != nil {
		f.Fatal(err)
	}
	sign := func(k *ecdsa.PrivateKey, claims map[string]any) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: k, KeyID: "k"}}, nil)
		s, _ := jwt.Signed(sg).Claims(claims).Serialize()
		return s
	}
	now := time.Now()
	base := map[string]any{"iss": "ehr", "sub": "ehr", "aud": "https://x/cds-services/s", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "1"}
	for _, seed := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", sign(other, base), sign(key, map[string]any{"iss": "ehr"})} {
		f.Add(seed)
	}
	a := &authenticator{clients: reg, docs: docs, http: http.DefaultClient, now: time.Now, skew: time.Minute,
		maxLifetime: 5 * time.Minute, jwks: map[string]cachedKeys{}}
	f.Fuzz(func(t *testing.T, tok string) {
		if _, aerr := a.verify(context.Background(), tok, []string{"https://x/cds-services/s"}); aerr == nil {
			t.Fatalf("accepted %q", tok)
		}
	})
}
