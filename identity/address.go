package identity

import (
	"strings"
)

// Street suffix abbreviations (USPS Publication 28, Appendix C1 "Street
// Suffix Abbreviations": the common suffix names and variants mapped to the
// Postal Service standard abbreviation). Only the frequent ones are listed.
var streetSuffixes = map[string]string{
	"ALLEY": "ALY", "ALLEE": "ALY", "ALLY": "ALY", "ALY": "ALY",
	"AVENUE": "AVE", "AV": "AVE", "AVEN": "AVE", "AVENU": "AVE", "AVN": "AVE", "AVNUE": "AVE", "AVE": "AVE",
	"BOULEVARD": "BLVD", "BOUL": "BLVD", "BOULV": "BLVD", "BLVD": "BLVD",
	"CIRCLE": "CIR", "CIRC": "CIR", "CIRCL": "CIR", "CRCL": "CIR", "CRCLE": "CIR", "CIR": "CIR",
	"COURT": "CT", "CRT": "CT", "CT": "CT",
	"COVE": "CV", "CV": "CV",
	"DRIVE": "DR", "DRIV": "DR", "DRV": "DR", "DR": "DR",
	"EXPRESSWAY": "EXPY", "EXPY": "EXPY",
	"FREEWAY": "FWY", "FWY": "FWY",
	"HIGHWAY": "HWY", "HIGHWY": "HWY", "HIWAY": "HWY", "HIWY": "HWY", "HWAY": "HWY", "HWY": "HWY",
	"LANE": "LN", "LN": "LN",
	"LOOP": "LOOP", "LOOPS": "LOOP",
	"PARKWAY": "PKWY", "PARKWY": "PKWY", "PKWAY": "PKWY", "PKY": "PKWY", "PKWY": "PKWY",
	"PLACE": "PL", "PL": "PL",
	"PLAZA": "PLZ", "PLZA": "PLZ", "PLZ": "PLZ",
	"ROAD": "RD", "RD": "RD",
	"SQUARE": "SQ", "SQR": "SQ", "SQRE": "SQ", "SQU": "SQ", "SQ": "SQ",
	"STREET": "ST", "STRT": "ST", "STR": "ST", "ST": "ST",
	"TERRACE": "TER", "TERR": "TER", "TER": "TER",
	"TRAIL": "TRL", "TRAILS": "TRL", "TRLS": "TRL", "TRL": "TRL",
	"WAY": "WAY", "WY": "WAY",
}

// Directionals (USPS Publication 28, section 233 and Appendix B: primary
// directional abbreviations).
var directionals = map[string]string{
	"NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W",
	"NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
	"N": "N", "S": "S", "E": "E", "W": "W", "NE": "NE", "NW": "NW", "SE": "SE", "SW": "SW",
}

// Secondary unit designators (USPS Publication 28, Appendix C2). All of them
// are reduced to "#": what matters for matching is the unit number, and
// sources disagree on "Apt" versus "Unit" for the same door.
var unitDesignators = map[string]bool{
	"APARTMENT": true, "APT": true, "UNIT": true, "STE": true, "SUITE": true,
	"BLDG": true, "BUILDING": true, "FL": true, "FLOOR": true, "RM": true,
	"ROOM": true, "#": true, "NO": true, "NUMBER": true, "LOT": true, "SPC": true,
	"SPACE": true, "TRLR": true, "TRAILER": true,
}

// Address is a normalized postal address: Street is the primary line in
// USPS Publication 28 form without the house number and unit ("OAK ST",
// "N MAIN AVE"), Number the house number, Unit the secondary unit number,
// Zip the five-digit ZIP code. Fields the input lacked are "".
type Address struct {
	Number, Street, Unit, Zip string
}

// Key returns the address as one comparable string ("" when there is no
// street).
func (a Address) Key() string {
	if a.Street == "" {
		return ""
	}
	return a.Number + " " + a.Street + " #" + a.Unit + " " + a.Zip
}

// ParseAddress normalizes a one-line address as ehrgate's normalized
// Patient holds it ("12 Oak Street, Apt 3, Springfield, IL 62701, US"):
// upper case, punctuation removed, street suffixes and directionals
// abbreviated and unit designators reduced as in USPS Publication 28. The
// first comma-separated part is the street line; a following part that
// starts with a unit designator is its unit; the ZIP code is the last
// five-digit token (ZIP+4 is cut to five).
func ParseAddress(s string) Address {
	var a Address
	parts := strings.Split(s, ",")
	if len(parts) == 0 {
		return a
	}
	line := tokens(parts[0])
	if len(parts) > 1 {
		if t := tokens(parts[1]); len(t) > 0 && (unitDesignators[t[0]] || strings.HasPrefix(t[0], "#")) {
			line = append(line, t...)
		}
	}
	for i := len(parts) - 1; i >= 1 && a.Zip == ""; i-- {
		t := tokens(parts[i])
		for j := len(t) - 1; j >= 0; j-- {
			if z := zip5(t[j]); z != "" {
				a.Zip = z
				break
			}
		}
	}
	var street []string
	for i := 0; i < len(line); i++ {
		t := line[i]
		switch {
		case i == 0 && isDigits(t):
			a.Number = strings.TrimLeft(t, "0")
		case strings.HasPrefix(t, "#") && len(t) > 1:
			a.Unit = strings.TrimLeft(t[1:], "0")
		case unitDesignators[t]:
			if i+1 < len(line) {
				a.Unit = strings.TrimLeft(strings.TrimPrefix(line[i+1], "#"), "0")
				i++
			}
		default:
			if d, ok := directionals[t]; ok {
				street = append(street, d)
			} else if sfx, ok := streetSuffixes[t]; ok && i > 0 {
				street = append(street, sfx)
			} else {
				street = append(street, t)
			}
		}
	}
	a.Street = strings.Join(street, " ")
	return a
}

// tokens upper-cases s and splits it on anything that is not a letter, a
// digit or "#" ("#" starts a token of its own).
func tokens(s string) []string {
	var out []string
	start := -1
	up := strings.ToUpper(s)
	for i := 0; i <= len(up); i++ {
		var c byte
		if i < len(up) {
			c = up[i]
		}
		alnum := c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if c == '#' {
			if start >= 0 {
				out = append(out, up[start:i])
			}
			start = i
			continue
		}
		if alnum {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, up[start:i])
			start = -1
		}
	}
	return out
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// zip5 returns the five-digit ZIP code of a token (62701 or 627011234), or "".
func zip5(t string) string {
	if (len(t) == 5 || len(t) == 9) && isDigits(t) {
		return t[:5]
	}
	return ""
}
