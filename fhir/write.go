package fhir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrNoAnswer is returned (wrapped) when a write got no answer: the
// connection failed after the request may have reached the server, so the
// write may or may not have happened. Only a conditional create or a
// version-checked update is safe to send again.
var ErrNoAnswer = errors.New("fhir: no answer to a write")

// Create sends a create interaction (POST [base]/typ), conditional when
// ifNoneExist is a search query ("identifier=sys|val"): the server then
// answers 200 with the one match instead of creating, or 412 for several
// (http://hl7.org/fhir/R4/http.html#ccreate).
//
// Writes are sent once, never retried here: the caller knows whether a
// repeat is safe. A non-2xx answer is a *Error with the OperationOutcome; a
// lost answer wraps ErrNoAnswer.
func (c *Client) Create(ctx context.Context, typ string, body []byte, ifNoneExist string) (*Response, error) {
	if typ == "" {
		return nil, errors.New("fhir: create needs a type")
	}
	h := http.Header{}
	if ifNoneExist != "" {
		h.Set("If-None-Exist", ifNoneExist)
	}
	return c.write(ctx, http.MethodPost, c.base.JoinPath(typ).String(), typ, "create", body, h)
}

// Update sends an update interaction (PUT [base]/typ/id). With ifMatch (an
// ETag such as W/"3") the server refuses with 412 when the resource is at
// another version (http://hl7.org/fhir/R4/http.html#concurrency). Sent once,
// like Create.
func (c *Client) Update(ctx context.Context, typ, id string, body []byte, ifMatch string) (*Response, error) {
	if typ == "" || id == "" {
		return nil, errors.New("fhir: update needs a type and an id")
	}
	h := http.Header{}
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	return c.write(ctx, http.MethodPut, c.base.JoinPath(typ, id).String(), typ, "update", body, h)
}

// Delete sends a delete interaction (DELETE [base]/typ/id). Sent once,
// like Create.
func (c *Client) Delete(ctx context.Context, typ, id string) error {
	if typ == "" || id == "" {
		return errors.New("fhir: delete needs a type and an id")
	}
	_, err := c.write(ctx, http.MethodDelete, c.base.JoinPath(typ, id).String(), typ, "delete", nil, nil)
	return err
}

// write sends one write request; a 401 is retried once after the
// authorizer's Reauthorizer renewed the token (the server refused it, so
// nothing was written).
func (c *Client) write(ctx context.Context, method, u, typ, interaction string, body []byte, extra http.Header) (*Response, error) {
	op := interaction + " " + typ
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("fhir: %s: building request: %w", op, err)
		}
		req.Header.Set("Accept", "application/fhir+json")
		req.Header.Set("Content-Type", "application/fhir+json")
		for k, vs := range c.opts.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		for k, vs := range extra {
			req.Header[k] = vs
		}
		if c.opts.Authorizer != nil {
			if err := c.opts.Authorizer.Authorize(ctx, req); err != nil {
				return nil, fmt.Errorf("fhir: %s: authorizing: %w", op, err)
			}
		}
		start := time.Now()
		resp, err := c.opts.HTTPClient.Do(req)
		info := RequestInfo{Connection: c.opts.Connection, ResourceType: typ, Interaction: interaction, Attempt: attempt}
		if err != nil {
			info.Duration, info.Err = time.Since(start), err
			c.observe(info)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("fhir: %s: %w: %w", op, ErrNoAnswer, ctx.Err())
			}
			return nil, fmt.Errorf("fhir: %s: %w: %w", op, ErrNoAnswer, redactURLError(err))
		}
		rb, readErr := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
		resp.Body.Close()
		info.Status, info.Duration = resp.StatusCode, time.Since(start)
		if readErr != nil {
			info.Err = readErr
			c.observe(info)
			return nil, fmt.Errorf("fhir: %s: reading the answer: %w: %w", op, ErrNoAnswer, readErr)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			c.observe(info)
			return &Response{Status: resp.StatusCode, Body: rb, ETag: resp.Header.Get("ETag"),
				LastModified: resp.Header.Get("Last-Modified"), Location: resp.Header.Get("Location")}, nil
		}
		ferr := &Error{Op: op, StatusCode: resp.StatusCode, Outcome: decodeOutcome(rb)}
		info.Err = ferr
		c.observe(info)
		if resp.StatusCode == http.StatusUnauthorized && attempt == 1 {
			if ra, ok := c.opts.Authorizer.(Reauthorizer); ok {
				if err := ra.Invalidate(ctx, req); err != nil {
					return nil, fmt.Errorf("fhir: %s: re-authorizing after 401: %w", op, err)
				}
				continue
			}
		}
		return nil, ferr
	}
}
