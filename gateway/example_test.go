package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
	_ "ehrgate/store/sqlite" // registers sqlite: stores
	"ehrgate/synth"
)

// A Go program embeds the gateway with its own store and its own HTTP
// route beside ehrgate's.
func Example() {
	ctx := context.Background()
	ehr := simulatedEHR(5)
	defer ehr.Close()

	dir, _ := os.MkdirTemp("", "ehrgate-example")
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, "sqlite:"+dir, store.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK() // in production: the same key on every process, from a secret store
	conn := config.Connection{Name: "clinic", BaseURL: ehr.URL + "/fhir", Vendor: "generic"}
	g, err := gateway.New(ctx, gateway.Options{
		Config:  config.Config{Connections: []config.Connection{conn}},
		Store:   st,
		Keyring: secrets.NewKeyring(kek),
	})
	if err != nil {
		log.Fatal(err)
	}
	sum, err := g.Sync(ctx, conn)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("synced %d patients, %d errors\n", sum.Patients, sum.Errors)

	// The program's own route, served with ehrgate's dashboard and metrics.
	// Every route says who may call it (server.Public, Operator or
	// PatientData); this one counts patients, which is patient data.
	g.Mount(server.Route{Pattern: "GET /my/patients", Access: server.PatientData, Serves: "how many patients",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pats, _ := st.SearchPatients(r.Context(), store.PatientQuery{Connection: "clinic"})
			json.NewEncoder(w).Encode(map[string]int{"patients": len(pats)})
		})})
	web := httptest.NewServer(g.Handler())
	defer web.Close()
	resp, err := http.Get(web.URL + "/my/patients")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	// Output:
	// synced 5 patients, 0 errors
	// {"patients":5}
}

// simulatedEHR serves n synthetic patients from the simulated EHR.
func simulatedEHR(n int) *httptest.Server {
	sim := ehrsim.New(ehrsim.Options{})
	if err := synth.New(synth.Options{Patients: n, Seed: 7}).Each(func(_ string, raw json.RawMessage) error {
		return sim.Load(raw)
	}); err != nil {
		log.Fatal(err)
	}
	return httptest.NewServer(sim.Handler())
}
