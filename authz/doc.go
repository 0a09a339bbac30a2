// Package authz is ehrgate's own SMART App Launch 2 authorization server:
// the one apps get access tokens from for ehrgate's FHIR API (package
// fhirapi), whose tokens package apiauth verifies.
//
// It offers:
//
//   - standalone launch (authorization code, PKCE S256 required) for
//     public apps and confidential apps authenticating with
//     private_key_jwt; a signed-in person (Options.Person, the people login
//     built elsewhere) picks the patient on a server-rendered page when the
//     app asks for launch/patient, and the token response and the access
//     token carry it as a served id (fhirapi.ServedID);
//   - SMART Backend Services: client_credentials with a private_key_jwt
//     client assertion (ES384 or RS384, keys inline or by URL, jti replay
//     refused across replicas);
//   - rotating refresh tokens (offline_access, online_access), whose reuse
//     revokes the whole grant; single-use authorization codes whose second
//     use revokes what the first issued (OAuth 2.0 Security BCP 4.13, 4.14);
//   - token introspection (RFC 7662, callers authenticate with a client
//     assertion) and revocation (RFC 7009);
//   - discovery at the FHIR base (.well-known/smart-configuration) and the
//     JWKS of its token-signing keys.
//
// Access tokens are JWTs (ES384) with iss, aud (the FHIR base URL), exp,
// iat, jti, scope, client_id, sub and, with a patient in context, patient.
// Server.Verifier returns an apiauth.Verifier that checks them, revocation
// included.
//
// Scopes are granted deny by default: what the app asked for, narrowed to
// what its registration (package clients) allows, per flow (system/ scopes
// only for backend services; patient/ and user/ scopes, launch/patient,
// offline_access and online_access only with a person). patient/ scopes
// without launch/patient are dropped: there would be no patient in context.
// openid and fhirUser are not granted (no id tokens yet), nor is launch
// (no EHR launch: ehrgate is not an EHR).
//
// # Library
//
// The OAuth 2.0 protocol machinery is github.com/ory/fosite: request
// parsing and validation, the authorization-code, client-credentials and
// refresh-token grants, PKCE, code-reuse and refresh-token-reuse
// detection, introspection and revocation. fosite is composable: each flow
// declares only the storage it needs (here about fifteen small methods over
// store.Documents), and its strategies are interfaces. zitadel/oidc's op
// package was the alternative; it demands one large Storage interface
// centred on OpenID Connect and user info, and has no code-reuse
// revocation. Where fosite does not do what SMART or this project requires,
// its extension points are used, not a fork:
//
//   - ClientAuthenticationStrategy (clientauth.go): fosite checks a client
//     assertion against one signing algorithm per client and knows no
//     replay store shared by replicas; ours accepts ES384 and RS384, checks
//     exp at most 5 minutes ahead and records each jti in the store;
//   - the token strategy (strategy.go): access tokens are JWTs signed with
//     ehrgate's own encrypted-at-rest key and carrying SMART claims; codes
//     and refresh tokens are 256-bit random strings of which only a hash is
//     stored, so no HMAC secret has to be shared by replicas;
//   - the scope strategy accepts any requested scope, and this package
//     grants the narrowed set itself (fosite refuses a request holding one
//     scope the client may not have; SMART expects the grant narrowed);
//   - introspection: fosite authenticates introspection callers with HTTP
//     Basic only, so the handler authenticates the client assertion itself
//     and calls fosite's IntrospectToken;
//   - redirect URIs are compared exactly before fosite sees the request
//     (fosite lets a loopback redirect URI differ in its port, RFC 8252).
//
// # State
//
// Everything lives in store.Documents, so every replica sharing the store
// sees the same: authorization codes, PKCE requests, access-token records,
// refresh tokens, grant families, revoked jtis, client-assertion jtis,
// pending patient-picker requests, and the signing keys. Codes and tokens
// are stored under (and only as) SHA-256 hashes; the grant's session (who,
// which patient) and the private signing key are sealed with the
// secrets.Keyring (envelope encryption), as smart.KeyManager seals its
// keys, so the documents hold neither secrets nor patient data in the
// clear. Server.Purge deletes what has expired.
//
// Nothing here logs a token, a code, an assertion or patient data.
package authz
