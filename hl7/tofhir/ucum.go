package tofhir

import "strings"

// UCUM check: a unit is sent as a UCUM code (system
// http://unitsofmeasure.org) only when it parses as one; otherwise the
// quantity keeps the unit text without a system or code ("beats/min",
// "mEq/L", "cells/uL" are not UCUM). This is a syntax check over the UCUM
// grammar (terms joined by "." and "/", exponents, annotations in braces,
// parentheses, integer factors such as 10*3) with the atoms clinical
// results use; an unknown atom is "not UCUM", never guessed.

var ucumPrefixes = []string{"da", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m", "u", "n", "p", "f", "a", "z", "y"}

// ucumMetric atoms take a prefix; ucumOther atoms do not.
var ucumMetric = set2(`m g L l s mol Hz Pa J W A V K Cel eq U kat osm bar cal t Ohm S F C Bq Gy Sv N T Wb H lm lx sr rad
	[iU] [IU] m[Hg] m[H2O] [CFU] [arb'U] [USP'U] [GPL'U] [MPL'U] [APL'U] [beth'U] [ka'U] [knk'U] [mclg'U] [todd'U] [smgy'U]
	[PFU] [FFU] [BAU] [AU] [Amb'a'1'U] [EU] [Lf] [D'ag'U] [tb'U] [HPF] [LPF] [IR] B`)

var ucumOther = set2(`min h d wk mo a % deg ' '' [degF] [in_i] [ft_i] [yd_i] [lb_av] [oz_av] [gal_us] [qt_us] [pt_us]
	[foz_us] [tsp_us] [tbs_us] [cup_us] [drp] [ppm] [ppb] [ppth] [pptr] [pH] [mi_i] [sft_i] [sin_i] [degRe]
	[S] [hp'_X] [hp'_C] [hp'_M] [hp'_Q] [kp'_X] [kp'_C] [kp'_M] [kp'_Q] [iU] 10* 10^ [pi]`)

func set2(s string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(s) {
		m[f] = true
	}
	return m
}

// isUCUM reports whether u parses as a UCUM unit expression.
func isUCUM(u string) bool {
	if u == "" || strings.ContainsAny(u, " \t") {
		return false
	}
	p := ucumParser{s: u}
	if strings.HasPrefix(p.s, "/") { // "/min"
		p.i++
	}
	return p.term() && p.i == len(p.s)
}

type ucumParser struct {
	s string
	i int
}

func (p *ucumParser) term() bool {
	if !p.component() {
		return false
	}
	for p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == '/') {
		p.i++
		if !p.component() {
			return false
		}
	}
	return true
}

func (p *ucumParser) component() bool {
	if p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '(':
		p.i++
		if !p.term() || p.i >= len(p.s) || p.s[p.i] != ')' {
			return false
		}
		p.i++
		return true
	case c == '{':
		return p.annotation()
	case c >= '0' && c <= '9' && !strings.HasPrefix(p.s[p.i:], "10*") && !strings.HasPrefix(p.s[p.i:], "10^"):
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		return p.optAnnotation()
	}
	// The longest simple unit (prefix + atom, or atom) that matches here.
	best := 0
	for j := len(p.s); j > p.i; j-- {
		if simpleUnit(p.s[p.i:j]) {
			best = j
			break
		}
	}
	if best == 0 {
		return false
	}
	p.i = best
	// exponent
	start := p.i
	if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		p.i = start // a sign without digits is not an exponent
	}
	return p.optAnnotation()
}

func (p *ucumParser) optAnnotation() bool {
	if p.i < len(p.s) && p.s[p.i] == '{' {
		return p.annotation()
	}
	return true
}

func (p *ucumParser) annotation() bool {
	j := strings.IndexByte(p.s[p.i:], '}')
	if j < 0 {
		return false
	}
	p.i += j + 1
	return true
}

func simpleUnit(s string) bool {
	if ucumMetric[s] || ucumOther[s] {
		return true
	}
	for _, pre := range ucumPrefixes {
		if strings.HasPrefix(s, pre) && ucumMetric[s[len(pre):]] {
			return true
		}
	}
	return false
}
