// Package smart is ehrgate's SMART on FHIR client: discovery
// (.well-known/smart-configuration with a CapabilityStatement fallback),
// the EHR and standalone launches (authorization code with PKCE, state bound
// to the browser, id_token verification), SMART Backend Services (client
// credentials with RS384/ES384 client assertions), v1/v2 scopes with
// least-privilege requests and granted-vs-requested comparison, a token
// source for the FHIR client (refresh before expiry, single-flight, retry
// after 401, refresh-token rotation, invalid_grant → needs
// re-authorization), and ehrgate's signing keys with a JWKS handler and
// rotation.
//
// Tokens and private keys are stored through store.TokenStore, encrypted
// with package secrets; nothing secret is ever logged or printed (see
// Secret). README.md describes the flows, registration with an EHR and the
// choices made.
package smart
