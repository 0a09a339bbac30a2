package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"ehrgate/ehr"
	"ehrgate/fhir"
)

// ResolveAdapter returns the adapter for a connection: the configured
// vendor's, or the one detected from the server's CapabilityStatement and
// SMART configuration, with the site profile at sitePath layered on top.
// detected describes the outcome for people, e.g. "epic November 2025
// 11.2.0 (detected, confidence 1.00)". A server that cannot be read for
// detection gets the generic adapter; the sync or probe that follows
// reports the failure.
func ResolveAdapter(ctx context.Context, baseURL, vendor, sitePath string, opts fhir.Options) (a *ehr.Adapter, detected string, err error) {
	if vendor != "" {
		a, err = Adapter(vendor, sitePath)
		return a, vendor + " (configured)", err
	}
	boot, err := fhir.NewClient(baseURL, opts)
	if err != nil {
		return nil, "", err
	}
	capBody, _ := boot.Capabilities(ctx)
	smartBody := fetchSMARTConfig(ctx, boot.BaseURL())
	v, version, conf := ehr.Detect(ctx, capBody, smartBody)
	a, err = Adapter(v, sitePath)
	return a, strings.TrimSpace(fmt.Sprintf("%s %s", v, version)) + fmt.Sprintf(" (detected, confidence %.2f)", conf), err
}

// fetchSMARTConfig returns [base]/.well-known/smart-configuration, or nil.
func fetchSMARTConfig(ctx context.Context, base string) []byte {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil
	}
	return b
}

// Adapter returns the adapter for a vendor name ("" = generic) with the
// site profile at sitePath ("" = none) layered on top.
func Adapter(vendor, sitePath string) (*ehr.Adapter, error) {
	a, err := ehr.Lookup(vendor)
	if err != nil {
		return nil, err
	}
	if sitePath == "" {
		return a, nil
	}
	site, err := ehr.LoadSiteProfile(sitePath)
	if err != nil {
		return nil, err
	}
	return a.WithSite(site)
}
