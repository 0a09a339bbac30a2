// Package deploy holds what operators need to run ehrgate, and the tests
// that check it without a container runtime or a cluster:
//
//   - Dockerfile (with Dockerfile.dockerignore): a multi-stage build of a
//     static binary onto distroless, running as nonroot. Build it from the
//     repository root: docker build -f deploy/Dockerfile -t ehrgate .
//   - ehrgate.service: a hardened systemd unit.
//   - kubernetes/: a Deployment of several replicas sharing one PostgreSQL,
//     its Secret, configuration, Services, PodDisruptionBudget and
//     NetworkPolicy, applied with kubectl apply -k deploy/kubernetes.
//   - prometheus/: alerting rules over the metrics ehrgate exports
//     (alerts.yml; hl7.yml for the HL7 v2 feeds: silent during a busy
//     hour, rising reject rate, conversion lag).
//
// The tests parse each file, assert what it must say (non-root, hardened,
// probes on /healthz and /readyz, a configuration that config.Validate
// accepts), build the binary with the Dockerfile's own command, and run
// systemd-analyze and kubectl kustomize when they are installed.
package deploy
