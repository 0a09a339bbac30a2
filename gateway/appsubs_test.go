package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/apiauth"
	"ehrgate/config"
	"ehrgate/events"
	"ehrgate/fhir/backport"
	"ehrgate/fhirapi"
	"ehrgate/gateway"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestAppSubscriptionThroughTheGateway: an app subscribes on the
// gateway's FHIR API; an event the gateway publishes (as ingestion does)
// reaches the app's real endpoint as a numbered full-resource
// notification, delivered by the gateway's own leased deliverer.
func TestAppSubscriptionThroughTheGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []backport.Notification
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := backport.ParseNotification(body)
		if err != nil {
			t.Errorf("app endpoint: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer app.Close()

	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	var recs []store.Record
	for _, raw := range []string{
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"potassium"},"subject":{"reference":"Patient/p1"}}`,
	} {
		rec, err := refresh.NewRecord("hl7", []byte(raw), now, "test")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, err := st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	const aud = "http://127.0.0.1/fhir"
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{API: config.API{BaseURL: aud, AllowPrivateSubscriptionEndpoints: true}}, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: "https://auth.test", Audience: aud,
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}})
	if err != nil {
		t.Fatal(err)
	}
	g.SetAPIAuth(v)
	ev, err := g.StartEvents(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://auth.test", Audience: jwt.Audience{aud}, Subject: "u1",
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute))}).
		Claims(map[string]any{"scope": "patient/Subscription.c patient/*.rs", "client_id": "app", "patient": "hl7.p1"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := backport.SubscriptionRequest{Topic: fhirapi.TopicPatientChart, Endpoint: app.URL, Payload: backport.PayloadFullResource}.Resource()
	req, _ := http.NewRequest("POST", srv.URL+"/fhir/Subscription", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d", resp.StatusCode)
	}
	ev.Bus.Publish(events.Event{Kind: events.ResultFinal, Connection: "hl7", PatientRef: "Patient/p1", Resources: []string{"Observation/o1"}})
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the app got %d notifications, want the handshake and the event", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0].Status.Type != backport.TypeHandshake || got[1].Status.Type != backport.TypeEvent || got[1].Status.EventsSinceStart != 1 ||
		len(got[1].Resources) != 1 || got[1].Resources[0].Ref != "Observation/hl7.o1" || len(got[1].Resources[0].Resource) == 0 {
		t.Fatalf("notifications: %+v", got)
	}
}
