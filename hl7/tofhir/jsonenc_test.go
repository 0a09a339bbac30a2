package tofhir

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// jsonCases are values of every kind marshal writes itself or hands to
// encoding/json, with strings that exercise each escape.
var jsonCases = []any{
	obj{},
	obj{"b": "x", "a": []any{"y", true, false, nil, 3, -7}, "c": obj{"z": obj{}}},
	obj{"html": "<a href=\"x\">&amp;</a>", "ctl": "\x00\x01\b\f\n\r\t\x1f\x7f", "bs": `\path\`},
	obj{"utf8": "Müller 日本 \u2028\u2029 😀", "bad": "a\xffb\xc3(\xe2\x82", "trunc": "\xe2\x82"},
	obj{"num": json.Number("12.50"), "f": 1e21, "f2": 0.000001, "f3": 3.5, "i64": int64(-5), "u": uint8(7)},
	obj{"nilslice": []any(nil), "nilobj": obj(nil), "objs": []obj{{"k": "v"}, nil}, "strs": []string{"a", "<"}, "nilstrs": []string(nil)},
	obj{"empty": []any{}, "emptyobjs": []obj{}, "nested": []any{[]any{obj{"x": []string{}}}}},
	obj{"s": struct {
		A string `json:"a"`
		B int    `json:"b,omitempty"`
	}{A: "<x>"}},
	obj{"\u2028key<>": 1, "": "empty key", "é": "accent"},
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	check := func(o obj) {
		t.Helper()
		want, werr := json.Marshal(o)
		got, gerr := marshal(o)
		if (werr != nil) != (gerr != nil) || string(got) != string(want) {
			t.Fatalf("marshal(%#v) = %s, %v; json.Marshal = %s, %v", o, got, gerr, want, werr)
		}
	}
	for _, c := range jsonCases {
		check(c.(obj))
	}
	// Random trees of random strings (any bytes) and keys.
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			switch rng.IntN(3) {
			case 0:
				b[i] = byte(rng.IntN(256))
			case 1:
				b[i] = "<>&\"\\\n\x00\x7f"[rng.IntN(8)]
			default:
				b[i] = byte('a' + rng.IntN(26))
			}
		}
		if rng.IntN(5) == 0 {
			return string(b) + "\u2028é"
		}
		return string(b)
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := rng.IntN(9); {
		case k < 3 || depth > 3:
			return str()
		case k == 3:
			return rng.IntN(2) == 0
		case k == 4:
			return rng.IntN(1000) - 500
		case k == 5:
			a := []any{}
			for range rng.IntN(4) {
				a = append(a, value(depth+1))
			}
			return a
		case k == 6:
			return []string{str(), str()}
		default:
			o := obj{}
			for range rng.IntN(5) {
				o[str()] = value(depth + 1)
			}
			return o
		}
	}
	for range 2000 {
		o := obj{}
		for range rng.IntN(8) {
			o[str()] = value(0)
		}
		check(o)
	}
}

// FuzzMarshal holds marshal to encoding/json for strings of any bytes.
func FuzzMarshal(f *testing.F) {
	f.Add("Müller", "<&>", "\xff\u2028")
	f.Fuzz(func(t *testing.T, k, v, w string) {
		o := obj{k: v, "n": obj{w: []any{v, k}}, "s": []string{w}}
		want, _ := json.Marshal(o)
		got, err := marshal(o)
		if err != nil || string(got) != string(want) {
			t.Fatalf("marshal = %q, %v; json.Marshal = %q", got, err, want)
		}
	})
}
