package terminology

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Drug is an RxNorm concept with its term type and ingredient.
type Drug struct {
	RxCUI          string
	TTY            string // RxNorm term type: IN (ingredient), SCD (clinical drug), SBD (branded drug), ...
	Name           string
	IngredientCUI  string // the ingredient's RxCUI, "" when unknown
	IngredientName string
}

// Level names the drug level of a term type: "ingredient" (IN, PIN, MIN),
// "clinical-drug" (SCD, SCDC, SCDF, GPCK), "branded-drug" (SBD, SBDC, SBDF,
// BPCK), else "".
func (d Drug) Level() string {
	switch d.TTY {
	case "IN", "PIN", "MIN":
		return "ingredient"
	case "SCD", "SCDC", "SCDF", "SCDG", "GPCK":
		return "clinical-drug"
	case "SBD", "SBDC", "SBDF", "SBDG", "BPCK":
		return "branded-drug"
	}
	return ""
}

// DrugTable maps RxCUIs to drugs and NDCs to RxCUIs. It is safe for
// concurrent reads once loaded; loaders must not run concurrently with
// lookups.
type DrugTable struct {
	byCUI map[string]*Drug
	ndc   map[string]string // 11-digit NDC -> RxCUI
}

// NewDrugTable returns an empty table.
func NewDrugTable() *DrugTable {
	return &DrugTable{byCUI: map[string]*Drug{}, ndc: map[string]string{}}
}

// Drug returns the drug with RxCUI cui.
func (t *DrugTable) Drug(cui string) (Drug, bool) {
	d, ok := t.byCUI[cui]
	if !ok {
		return Drug{}, false
	}
	return *d, true
}

// RxCUIForNDC returns the RxCUI an NDC (any of the 4-4-2, 5-3-2, 5-4-1
// hyphenated forms, or 11 digits) maps to.
func (t *DrugTable) RxCUIForNDC(ndc string) (string, bool) {
	n, ok := NormalizeNDC(ndc)
	if !ok {
		return "", false
	}
	cui, ok := t.ndc[n]
	return cui, ok
}

// Len returns the number of drugs and of NDCs held.
func (t *DrugTable) Len() (drugs, ndcs int) { return len(t.byCUI), len(t.ndc) }

// NormalizeNDC converts an NDC to its 11-digit 5-4-2 form without hyphens.
// A 10-digit NDC without hyphens is ambiguous and is refused.
func NormalizeNDC(s string) (string, bool) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return "", false
			}
		}
	}
	switch len(parts) {
	case 1:
		if len(parts[0]) == 11 {
			return parts[0], true
		}
	case 3:
		a, b, c := parts[0], parts[1], parts[2]
		switch {
		case len(a) == 5 && len(b) == 4 && len(c) == 2:
		case len(a) == 4 && len(b) == 4 && len(c) == 2:
			a = "0" + a
		case len(a) == 5 && len(b) == 3 && len(c) == 2:
			b = "0" + b
		case len(a) == 5 && len(b) == 4 && len(c) == 1:
			c = "0" + c
		default:
			return "", false
		}
		return a + b + c, true
	}
	return "", false
}

func (t *DrugTable) loadBundledDrugs(r io.Reader) error {
	tb, err := newCSVTable(r, ',', "rxcui", "tty", "name", "ingredient_rxcui", "ingredient_name")
	if err != nil {
		return err
	}
	for {
		ok, err := tb.next()
		if err != nil || !ok {
			return err
		}
		d := &Drug{RxCUI: tb.get("rxcui"), TTY: tb.get("tty"), Name: tb.get("name"),
			IngredientCUI: tb.get("ingredient_rxcui"), IngredientName: tb.get("ingredient_name")}
		if d.RxCUI == "" {
			return fmt.Errorf("line %d: empty rxcui", tb.line)
		}
		t.byCUI[d.RxCUI] = d
	}
}

func (t *DrugTable) loadBundledNDC(r io.Reader) error {
	tb, err := newCSVTable(r, ',', "ndc", "rxcui")
	if err != nil {
		return err
	}
	for {
		ok, err := tb.next()
		if err != nil || !ok {
			return err
		}
		n, valid := NormalizeNDC(tb.get("ndc"))
		if !valid {
			return fmt.Errorf("line %d: not an NDC", tb.line)
		}
		t.ndc[n] = tb.get("rxcui")
	}
}

// rrf splits one line of an RxNorm Rich Release Format file (pipe-delimited,
// with a trailing pipe).
func rrf(line string) []string {
	return strings.Split(strings.TrimSuffix(strings.TrimRight(line, "\r\n"), "|"), "|")
}

// LoadRXNCONSO adds the RxNorm-sourced concepts (SAB RXNORM) of an official
// RXNCONSO.RRF file to t: RXCUI (column 1), TTY (13) and STR (15). Suppressed
// rows (SUPPRESS not N) are skipped. Ingredient links are not in RXNCONSO;
// drugs already known keep theirs.
func (t *DrugTable) LoadRXNCONSO(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := rrf(sc.Text())
		if len(f) < 17 {
			return fmt.Errorf("loading RXNCONSO: line %d: %d fields, want 18", n, len(f))
		}
		if f[11] != "RXNORM" || (f[16] != "" && f[16] != "N") {
			continue
		}
		cui, tty, str := f[0], f[12], f[14]
		d := t.byCUI[cui]
		if d == nil {
			d = &Drug{RxCUI: cui}
			t.byCUI[cui] = d
		}
		// Prefer the term types that name the concept over synonyms.
		if d.TTY == "" || d.TTY == "SY" || d.TTY == "TMSY" || d.TTY == "PSN" {
			d.TTY, d.Name = tty, str
		}
		if d.Level() == "ingredient" && d.IngredientCUI == "" {
			d.IngredientCUI, d.IngredientName = cui, str
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("loading RXNCONSO: %w", err)
	}
	return nil
}

// LoadRXNSAT adds the NDC attributes (ATN NDC, SAB RXNORM, not suppressed) of
// an official RXNSAT.RRF file to t: RXCUI (column 1) and ATV (11).
func (t *DrugTable) LoadRXNSAT(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := rrf(sc.Text())
		if len(f) < 12 {
			return fmt.Errorf("loading RXNSAT: line %d: %d fields, want 13", n, len(f))
		}
		if f[8] != "NDC" || f[9] != "RXNORM" || (f[11] != "" && f[11] != "N") {
			continue
		}
		if ndc, ok := NormalizeNDC(f[10]); ok {
			t.ndc[ndc] = f[0]
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("loading RXNSAT: %w", err)
	}
	return nil
}

// NDCLookup resolves an NDC to an RxCUI from somewhere other than the bundled
// table, such as an online service. Implementations must be safe for
// concurrent use; ok is false when the NDC is unknown. Lookups are off by
// default: everything in ehrgate works offline.
type NDCLookup interface {
	LookupNDC(ctx context.Context, ndc string) (rxcui string, ok bool, err error)
}

// RxNav looks NDCs up with the NLM RxNav REST API
// (https://lhncbc.nlm.nih.gov/RxNav/APIs/api-RxNorm.findRxcuiById.html),
// caching answers in memory. Only the NDC is sent, never patient data.
type RxNav struct {
	// BaseURL defaults to https://rxnav.nlm.nih.gov/REST.
	BaseURL string
	// Client defaults to http.DefaultClient.
	Client *http.Client

	mu    sync.Mutex
	cache map[string]string
}

// LookupNDC implements NDCLookup.
func (x *RxNav) LookupNDC(ctx context.Context, ndc string) (string, bool, error) {
	n, ok := NormalizeNDC(ndc)
	if !ok {
		return "", false, nil
	}
	x.mu.Lock()
	cui, hit := x.cache[n]
	x.mu.Unlock()
	if hit {
		return cui, cui != "", nil
	}
	base := x.BaseURL
	if base == "" {
		base = "https://rxnav.nlm.nih.gov/REST"
	}
	client := x.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/rxcui.json?"+url.Values{"idtype": {"NDC"}, "id": {n}}.Encode(), nil)
	if err != nil {
		return "", false, fmt.Errorf("looking up NDC: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", false, fmt.Errorf("looking up NDC: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("looking up NDC: status %d", resp.StatusCode)
	}
	var body struct {
		IDGroup struct {
			RxnormID []string `json:"rxnormId"`
		} `json:"idGroup"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", false, fmt.Errorf("decoding NDC lookup: %w", err)
	}
	if len(body.IDGroup.RxnormID) > 0 {
		cui = body.IDGroup.RxnormID[0]
	}
	x.mu.Lock()
	if x.cache == nil {
		x.cache = map[string]string{}
	}
	x.cache[n] = cui
	x.mu.Unlock()
	return cui, cui != "", nil
}

var _ NDCLookup = (*RxNav)(nil)
