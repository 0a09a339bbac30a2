package tofhir

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"

	"ehrgate/hl7"
)

// Character sets (MSH-18, HL7 table 0211). The parser works on bytes and
// the delimiters are ASCII, so a message in a single-byte character set is
// transcoded to UTF-8 as a whole before conversion (the stored raw message
// stays as received): "M\xfcller" in ISO-8859-1 becomes "Müller", never
// "M\uFFFDller".
var charsets = map[string]encoding.Encoding{
	"8859/1": charmap.ISO8859_1, "ISO IR100": charmap.ISO8859_1,
	"8859/2": charmap.ISO8859_2, "ISO IR101": charmap.ISO8859_2,
	"8859/3": charmap.ISO8859_3, "ISO IR109": charmap.ISO8859_3,
	"8859/4": charmap.ISO8859_4, "ISO IR110": charmap.ISO8859_4,
	"8859/5": charmap.ISO8859_5, "ISO IR144": charmap.ISO8859_5,
	"8859/6": charmap.ISO8859_6, "ISO IR127": charmap.ISO8859_6,
	"8859/7": charmap.ISO8859_7, "ISO IR126": charmap.ISO8859_7,
	"8859/8": charmap.ISO8859_8, "ISO IR138": charmap.ISO8859_8,
	"8859/9": charmap.ISO8859_9, "ISO IR148": charmap.ISO8859_9,
	"8859/15": charmap.ISO8859_15,
	// Not in table 0211 but sent by Windows-based systems.
	"WINDOWS-1252": charmap.Windows1252, "CP1252": charmap.Windows1252,
}

// utf8Names are the table 0211 names of encodings that need no transcoding.
var utf8Names = map[string]bool{"": true, "ASCII": true, "ISO IR6": true, "UNICODE UTF-8": true, "ISO IR192": true, "UTF-8": true}

// toUTF8 returns m decoded from its character set (MSH-18, else def) as a
// UTF-8 message: m itself when it already is. A character set ehrgate does
// not know, or UTF-8 that is not valid, is refused (AE 103 / 102) rather
// than converted into wrong names.
func toUTF8(m *hl7.Message, def string) (*hl7.Message, error) {
	name := strings.ToUpper(strings.TrimSpace(m.Header().Field(18).Value()))
	field := 18
	if name == "" {
		name, field = strings.ToUpper(strings.TrimSpace(def)), 0
	}
	raw := m.Bytes()
	if utf8Names[name] {
		if !utf8.Valid(raw) {
			return nil, problem(hl7.ErrDataType, at("MSH", 1, 18),
				"the message is not valid UTF-8; declare its character set in MSH-18 (e.g. 8859/1)")
		}
		return m, nil
	}
	enc, ok := charsets[name]
	if !ok {
		if field == 0 {
			return nil, fmt.Errorf("tofhir: unknown default character set %q", def)
		}
		return nil, problem(hl7.ErrTableValueNotFound, at("MSH", 1, 18), "MSH-18 character set is not supported")
	}
	b, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return nil, problem(hl7.ErrDataType, at("MSH", 1, 18), "the message is not valid in its MSH-18 character set")
	}
	out, err := hl7.Parse(b, hl7.ParseOptions{})
	if err != nil {
		return nil, problem(hl7.ErrDataType, at("MSH", 1, 18), "the message does not parse after decoding its character set")
	}
	return out, nil
}
