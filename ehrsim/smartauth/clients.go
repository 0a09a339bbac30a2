package smartauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadClients reads registered clients from a JSON or YAML file (by
// extension: .yaml/.yml are YAML, anything else JSON): either a list of
// clients or an object {"clients": [...]}. Keys are the RFC 7591 names of
// Client's fields (client_id, client_secret, jwks, jwks_uri,
// redirect_uris, launch_url, scopes, public, token_endpoint_auth_method,
// client_name); unknown keys are errors. jwks may be an inline JWK Set or a
// string holding one. Every client is validated and every problem reported
// at once.
func LoadClients(path string) ([]Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading clients: %w", err)
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("loading clients from %s: %w", path, err)
		}
		if data, err = json.Marshal(doc); err != nil {
			return nil, fmt.Errorf("loading clients from %s: %w", path, err)
		}
	}
	clients, err := decodeClients(data)
	if err != nil {
		return nil, fmt.Errorf("loading clients from %s: %w", path, err)
	}
	return clients, nil
}

// decodeClients decodes and validates a JSON client list.
func decodeClients(data []byte) ([]Client, error) {
	data = bytes.TrimSpace(data)
	var clients []Client
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if len(data) > 0 && data[0] == '{' {
		var wrapper struct {
			Clients []Client `json:"clients"`
		}
		if err := dec.Decode(&wrapper); err != nil {
			return nil, fmt.Errorf("decoding: %w", err)
		}
		clients = wrapper.Clients
	} else if err := dec.Decode(&clients); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range clients {
		c := &clients[i]
		if len(c.JWKS) > 0 && c.JWKS[0] == '"' {
			var inner string
			if err := json.Unmarshal(c.JWKS, &inner); err == nil {
				c.JWKS = json.RawMessage(inner)
			}
		}
		if string(c.JWKS) == "null" {
			c.JWKS = nil
		}
		if c.ID != "" && seen[c.ID] {
			errs = append(errs, fmt.Errorf("client %d: duplicate client_id %q", i+1, c.ID))
		}
		seen[c.ID] = true
		if err := normalizeClient(c); err != nil {
			errs = append(errs, fmt.Errorf("client %d: %w", i+1, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return clients, nil
}
