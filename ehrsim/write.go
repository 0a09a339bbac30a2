package ehrsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/fhir"
)

// DefaultWriteTypes are the resource types the simulator accepts writes of
// when Options.WriteTypes is nil: what ehrgate writes back (issue 17) and
// the Provenance that goes with each write.
var DefaultWriteTypes = []string{"Communication", "DocumentReference", "Flag", "Observation", "Provenance", "Task"}

// maxWriteBody bounds a create or update body.
const maxWriteBody = 1 << 20

// WriteFault is a fault injected into the next write requests (POST
// creates and PUT updates) by InjectWriteFault. Unlike Faults, write faults
// are armed explicitly, so a test says which write fails and how.
type WriteFault string

// The write faults.
const (
	// WriteFault500 answers 500 with an OperationOutcome; nothing is written.
	WriteFault500 WriteFault = "write-500"
	// WriteFault429 answers 429 with Retry-After 0; nothing is written.
	WriteFault429 WriteFault = "write-429"
	// WriteFaultLostAnswer commits the write, then drops the connection
	// without an answer: the client cannot tell whether it happened.
	WriteFaultLostAnswer WriteFault = "lost-answer"
	// WriteFault422 answers 422 Unprocessable Entity with an
	// OperationOutcome (code business-rule); nothing is written.
	WriteFault422 WriteFault = "write-422"
	// WriteFaultConcurrentEdit makes a simulated clinician edit the target
	// of the next update just before it is applied: the target's version
	// moves on, so an If-Match with the version the client read fails with
	// 412. Creates are not affected (the fault waits for an update).
	WriteFaultConcurrentEdit WriteFault = "concurrent-edit"
)

// WriteRequest is one write request the simulator received, as its write
// log keeps it: no body, only its SHA-256.
type WriteRequest struct {
	Method   string // POST or PUT (also PATCH, DELETE: refused, but logged)
	Type, ID string // from the path; ID is "" for a create
	// IfNoneExist and IfMatch are the conditional headers as sent.
	IfNoneExist, IfMatch string
	BodySHA256           string // hex SHA-256 of the request body
	Status               int    // status answered (0 when the answer was lost)
	Fault                WriteFault
	At                   time.Time
}

// writeState is the server's write side: armed faults, the write log and
// the id sequence of created resources.
type writeState struct {
	mu     sync.Mutex
	armed  []WriteFault // consumed in order
	log    []WriteRequest
	nextID int
}

// InjectWriteFault arms fault for the next n write requests it applies to
// (concurrent-edit: updates; the others: any create or update). Faults armed
// earlier fire first.
func (s *Server) InjectWriteFault(fault WriteFault, n int) {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	for range n {
		s.writes.armed = append(s.writes.armed, fault)
	}
}

// takeFault returns the next armed fault that applies to method, removing
// it, or "".
func (s *Server) takeFault(method string) WriteFault {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	for i, f := range s.writes.armed {
		if f == WriteFaultConcurrentEdit && method != http.MethodPut {
			continue
		}
		s.writes.armed = slices.Delete(s.writes.armed, i, i+1)
		return f
	}
	return ""
}

// Writes returns the write requests received so far, oldest first: every
// POST other than a search, PUT, PATCH and DELETE under /fhir/, including
// refused and faulted ones.
func (s *Server) Writes() []WriteRequest {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	return slices.Clone(s.writes.log)
}

type recordedKey struct{}

// RecordWrites wraps h (a handler in front of this server's Handler, such as
// a vendor personality) so that write requests are logged where they
// arrive, also those h answers itself; the server then does not log them a
// second time.
func (s *Server) RecordWrites(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isWrite(r) || r.Context().Value(recordedKey{}) != nil {
			h.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), recordedKey{}, true))
		s.recordWrite(w, r, h)
	})
}

// isWrite reports whether r is a write request the log keeps.
func isWrite(r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/fhir/") {
		return false
	}
	switch r.Method {
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	case http.MethodPost:
		return !strings.HasSuffix(r.URL.Path, "/_search")
	}
	return false
}

// recordWrite serves r with next and appends it to the write log, also when
// next aborts the connection (a lost answer).
func (s *Server) recordWrite(w http.ResponseWriter, r *http.Request, next http.Handler) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxWriteBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir/"), "/")
	typ, id, _ := strings.Cut(rest, "/")
	wr := WriteRequest{Method: r.Method, Type: typ, ID: id, IfNoneExist: r.Header.Get("If-None-Exist"),
		IfMatch: r.Header.Get("If-Match"), BodySHA256: hex.EncodeToString(sum[:]), At: s.opts.Clock()}
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		wr.Status = rec.status
		if f := w.Header().Get(faultHeader); f != "" {
			wr.Fault = WriteFault(f)
		}
		s.writes.mu.Lock()
		s.writes.log = append(s.writes.log, wr)
		s.writes.mu.Unlock()
	}()
	next.ServeHTTP(rec, r)
}

// faultHeader tells the write log which write fault answered.
const faultHeader = "X-Ehrsim-Fault"

// writeTypes returns the types the server accepts writes of.
func (s *Server) writeTypes() []string {
	if s.opts.WriteTypes == nil {
		return DefaultWriteTypes
	}
	return s.opts.WriteTypes
}

// writable reports whether the server accepts writes of typ.
func (s *Server) writable(typ string) bool { return slices.Contains(s.writeTypes(), typ) }

// serveCreate answers POST /fhir/{type}: a create, conditional when
// If-None-Exist carries a search query (http://hl7.org/fhir/R4/http.html#ccreate):
// no match creates, one match answers 200 with it, several answer 412.
func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	if !s.writable(typ) {
		fhir.WriteOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported",
			fmt.Sprintf("create of %s is not supported", typ))
		return
	}
	obj, doc, ok := s.readWriteBody(w, r, typ, "")
	if !ok {
		return
	}
	var q *query
	if cond := r.Header.Get("If-None-Exist"); cond != "" {
		vals, err := url.ParseQuery(strings.TrimPrefix(cond, "?"))
		if err == nil {
			q, err = parseQuery(typ, vals, s.opts.MaxPageSize, s.opts.MaxPageSize, false)
		}
		if err != nil {
			fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "If-None-Exist is not a valid search")
			return
		}
	}
	fault := s.takeFault(http.MethodPost)
	if s.answerFault(w, fault) {
		return
	}
	s.mu.Lock()
	if q != nil {
		p := q.run(s.ix)
		switch {
		case p.total == 1:
			e := p.matches[0]
			s.mu.Unlock()
			if fault == WriteFaultLostAnswer {
				w.Header().Set(faultHeader, string(fault))
				panic(http.ErrAbortHandler)
			}
			answerEntry(w, r, http.StatusOK, e)
			return
		case p.total > 1:
			s.mu.Unlock()
			fhir.WriteOutcome(w, http.StatusPreconditionFailed, "error", "duplicate",
				fmt.Sprintf("If-None-Exist matches %d resources", p.total))
			return
		}
	}
	s.writes.mu.Lock()
	s.writes.nextID++
	id := "w" + strconv.Itoa(s.writes.nextID)
	s.writes.mu.Unlock()
	obj = obj.set("id", mustJSON(id), "resourceType")
	doc["id"] = id
	e, err := s.putLocked(typ, id, obj, doc, nil)
	s.mu.Unlock()
	if err != nil {
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "storing the resource failed")
		return
	}
	if fault == WriteFaultLostAnswer {
		w.Header().Set(faultHeader, string(fault))
		panic(http.ErrAbortHandler) // committed; the answer never arrives
	}
	answerEntry(w, r, http.StatusCreated, e)
}

// serveUpdate answers PUT /fhir/{type}/{id}: an update of an existing
// resource, refused with 412 when If-Match names another version
// (http://hl7.org/fhir/R4/http.html#concurrency). Creating with a
// client-chosen id is not supported (404).
func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	if !s.writable(typ) {
		fhir.WriteOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported",
			fmt.Sprintf("update of %s is not supported", typ))
		return
	}
	obj, doc, ok := s.readWriteBody(w, r, typ, id)
	if !ok {
		return
	}
	fault := s.takeFault(http.MethodPut)
	if s.answerFault(w, fault) {
		return
	}
	s.mu.Lock()
	old := s.ix.get(typ, id)
	if old == nil {
		s.mu.Unlock()
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", fmt.Sprintf("%s/%s is not known", typ, id))
		return
	}
	if fault == WriteFaultConcurrentEdit {
		w.Header().Set(faultHeader, string(fault))
		if old = s.clinicianEditLocked(old); old == nil {
			s.mu.Unlock()
			fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "simulated edit failed")
			return
		}
	}
	if im := r.Header.Get("If-Match"); im != "" && !etagMatches(im, old.version) {
		s.mu.Unlock()
		fhir.WriteOutcome(w, http.StatusPreconditionFailed, "error", "conflict",
			fmt.Sprintf("%s/%s is at version %s, not the version in If-Match", typ, id, old.version))
		return
	}
	e, err := s.putLocked(typ, id, obj, doc, old)
	s.mu.Unlock()
	if err != nil {
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "storing the resource failed")
		return
	}
	if fault == WriteFaultLostAnswer {
		w.Header().Set(faultHeader, string(fault))
		panic(http.ErrAbortHandler)
	}
	answerEntry(w, r, http.StatusOK, e)
}

// answerFault answers the request for the faults that replace the answer
// (500, 429, 422) and reports whether it did.
func (s *Server) answerFault(w http.ResponseWriter, fault WriteFault) bool {
	if fault == "" {
		return false
	}
	s.countFault(FaultKind(fault))
	switch fault {
	case WriteFault500:
		w.Header().Set(faultHeader, string(fault))
		fhir.WriteOutcome(w, http.StatusInternalServerError, "fatal", "exception", "simulated internal error")
	case WriteFault429:
		w.Header().Set(faultHeader, string(fault))
		w.Header().Set("Retry-After", "0")
		fhir.WriteOutcome(w, http.StatusTooManyRequests, "error", "throttled", "simulated rate limit: retry later")
	case WriteFault422:
		w.Header().Set(faultHeader, string(fault))
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "business-rule", "simulated validation failure: the resource breaks a local rule")
	default:
		return false
	}
	return true
}

// clinicianEditLocked stores a new version of old as if a clinician had
// edited it (a note added), returning the new entry. s.mu is held.
func (s *Server) clinicianEditLocked(old *entry) *entry {
	obj, err := parseObject(old.body)
	if err != nil {
		return nil
	}
	var doc map[string]any
	if json.Unmarshal(old.body, &doc) != nil {
		return nil
	}
	note := mustJSON([]map[string]string{{"text": "edited by a simulated clinician"}})
	obj = obj.set("note", note, "")
	e, err := s.putLocked(old.typ, old.id, obj, doc, old)
	if err != nil {
		return nil
	}
	return e
}

// readWriteBody reads and checks a create (id "") or update body,
// answering 400 or 422 itself when it is not acceptable.
func (s *Server) readWriteBody(w http.ResponseWriter, r *http.Request, typ, id string) (object, map[string]any, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWriteBody+1))
	if err != nil || len(body) > maxWriteBody {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "cannot read the request body")
		return nil, nil, false
	}
	obj, err := parseObject(body)
	var doc map[string]any
	if err == nil {
		err = json.Unmarshal(body, &doc)
	}
	if err != nil {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "structure", "the body is not a JSON object")
		return nil, nil, false
	}
	if rt, _ := doc["resourceType"].(string); rt != typ {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid",
			fmt.Sprintf("resourceType %q does not match the URL's %s", rt, typ))
		return nil, nil, false
	}
	bodyID, _ := doc["id"].(string)
	if id != "" && bodyID != id {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "the body's id does not match the URL")
		return nil, nil, false
	}
	if missing := missingRequired(typ, doc); len(missing) > 0 {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "required",
			fmt.Sprintf("%s lacks required elements: %s", typ, strings.Join(missing, ", ")))
		return nil, nil, false
	}
	// The server owns meta.versionId and meta.lastUpdated.
	if m, ok := doc["meta"].(map[string]any); ok {
		delete(m, "versionId")
		delete(m, "lastUpdated")
		obj = obj.set("meta", mustJSON(m), "id")
	}
	return obj, doc, true
}

// requiredElements are the elements FHIR R4 makes mandatory (1..1) in each
// writable type, checked on every create and update.
var requiredElements = map[string][]string{
	"Flag":              {"status", "code", "subject"},
	"Observation":       {"status", "code"},
	"Task":              {"status", "intent"},
	"Communication":     {"status"},
	"DocumentReference": {"status", "content"},
	"Provenance":        {"target", "recorded", "agent"},
}

func missingRequired(typ string, doc map[string]any) []string {
	var missing []string
	for _, el := range requiredElements[typ] {
		if v, ok := doc[el]; !ok || v == nil {
			missing = append(missing, el)
		}
	}
	return missing
}

// putLocked stores obj as typ/id, the next version of old (nil: version
// "1"), and returns the new entry. s.mu is held.
func (s *Server) putLocked(typ, id string, obj object, doc map[string]any, old *entry) (*entry, error) {
	version := "1"
	if old != nil {
		version = nextVersion(old.version)
	}
	now := s.opts.Clock()
	obj, err := stampMeta(obj, version, now)
	if err != nil {
		return nil, err
	}
	body, err := obj.encode()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	e := &entry{typ: typ, id: id, version: version, lastUpdated: now.UTC().Truncate(time.Millisecond), body: body}
	e.extract(doc, paramsFor(typ))
	s.ix.put(e, old)
	return e, nil
}

// answerEntry answers a write with the resource as stored, its ETag,
// Location and Last-Modified.
func answerEntry(w http.ResponseWriter, r *http.Request, status int, e *entry) {
	h := w.Header()
	h.Set("ETag", `W/"`+e.version+`"`)
	h.Set("Location", baseURL(r)+"/"+e.typ+"/"+e.id+"/_history/"+e.version)
	h.Set("Last-Modified", e.lastUpdated.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(e.body)
}
