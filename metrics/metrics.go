// Package metrics holds ehrgate's Prometheus instruments: FHIR request
// latency and status by connection and resource type, sync outcomes,
// quarantine and data freshness. Labels carry connection names, resource
// types and status classes only: never patient identifiers.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ehrgate/fhir"
)

// Metrics is the set of instruments. Create one per process with New and
// register it with a registry.
type Metrics struct {
	FHIRRequests      *prometheus.HistogramVec
	SyncResources     *prometheus.CounterVec
	SyncErrors        *prometheus.CounterVec
	Quarantined       *prometheus.CounterVec
	LastSyncSuccess   *prometheus.GaugeVec
	LastSyncDuration  *prometheus.GaugeVec
	TypeLastNonEmpty  *prometheus.GaugeVec
	TypeReturnedCount *prometheus.GaugeVec
	NeedsReauth       *prometheus.GaugeVec
	TokenFailures     *prometheus.CounterVec
}

// New creates the instruments and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		FHIRRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ehrgate_fhir_request_duration_seconds",
			Help:    "FHIR HTTP request latency per attempt, by connection, resource type, interaction and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"connection", "resource_type", "interaction", "code"}),
		SyncResources: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_sync_resources_total",
			Help: "Resources received by syncs, by connection, resource type and change (new, updated, unchanged).",
		}, []string{"connection", "resource_type", "change"}),
		SyncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_sync_errors_total",
			Help: "Failed fetches of one resource type for one patient, by connection and resource type.",
		}, []string{"connection", "resource_type"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_quarantined_total",
			Help: "Inputs quarantined because they could not be processed, by connection and resource type.",
		}, []string{"connection", "resource_type"}),
		LastSyncSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ehrgate_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last sync that completed, by connection (data freshness).",
		}, []string{"connection"}),
		LastSyncDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ehrgate_sync_last_duration_seconds",
			Help: "Duration of the last completed sync, by connection.",
		}, []string{"connection"}),
		TypeReturnedCount: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ehrgate_sync_last_returned_resources",
			Help: "Resources of each type returned by the last completed sync; a drop to 0 signals a type that suddenly returns nothing.",
		}, []string{"connection", "resource_type"}),
		TypeLastNonEmpty: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ehrgate_sync_last_nonempty_timestamp_seconds",
			Help: "Unix time of the last sync in which a resource type returned at least one resource, by connection.",
		}, []string{"connection", "resource_type"}),
		NeedsReauth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ehrgate_connection_needs_reauthorization",
			Help: "1 when the EHR refused the connection's credentials (invalid_grant) and a person must authorize it again, else 0.",
		}, []string{"connection"}),
		TokenFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_token_refresh_failures_total",
			Help: "Failed attempts to obtain or refresh an access token, by connection.",
		}, []string{"connection"}),
	}
	if reg != nil {
		reg.MustRegister(m.FHIRRequests, m.SyncResources, m.SyncErrors, m.Quarantined, m.LastSyncSuccess,
			m.LastSyncDuration, m.TypeReturnedCount, m.TypeLastNonEmpty, m.NeedsReauth, m.TokenFailures)
	}
	return m
}

// ObserveRequest implements fhir.Observer.
func (m *Metrics) ObserveRequest(info fhir.RequestInfo) {
	code := "error"
	if info.Status != 0 {
		code = strconv.Itoa(info.Status)
	}
	m.FHIRRequests.WithLabelValues(info.Connection, info.ResourceType, info.Interaction, code).Observe(info.Duration.Seconds())
}

// SyncCompleted records a finished sync's per-type counts.
func (m *Metrics) SyncCompleted(connection string, at time.Time, took time.Duration, returned map[string]int) {
	m.LastSyncSuccess.WithLabelValues(connection).Set(float64(at.Unix()))
	m.LastSyncDuration.WithLabelValues(connection).Set(took.Seconds())
	for typ, n := range returned {
		m.TypeReturnedCount.WithLabelValues(connection, typ).Set(float64(n))
		if n > 0 {
			m.TypeLastNonEmpty.WithLabelValues(connection, typ).Set(float64(at.Unix()))
		}
	}
}

// Stored counts resources a sync received, by change (new, updated,
// unchanged).
func (m *Metrics) Stored(connection, resourceType, change string, n int) {
	m.SyncResources.WithLabelValues(connection, resourceType, change).Add(float64(n))
}

// FetchFailed counts a failed fetch of one type for one patient.
func (m *Metrics) FetchFailed(connection, resourceType string) {
	m.SyncErrors.WithLabelValues(connection, resourceType).Inc()
}

// QuarantinedInput counts one quarantined input.
func (m *Metrics) QuarantinedInput(connection, resourceType string) {
	m.Quarantined.WithLabelValues(connection, resourceType).Inc()
}

// AuthorizationFailed records a failed token request; reauth says whether
// the connection now needs a person to authorize it again.
func (m *Metrics) AuthorizationFailed(connection string, reauth bool) {
	m.TokenFailures.WithLabelValues(connection).Inc()
	if reauth {
		m.NeedsReauth.WithLabelValues(connection).Set(1)
	}
}

// Authorized records that a connection holds working credentials.
func (m *Metrics) Authorized(connection string) {
	m.NeedsReauth.WithLabelValues(connection).Set(0)
}

var _ fhir.Observer = (*Metrics)(nil)
