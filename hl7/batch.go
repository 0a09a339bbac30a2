package hl7

import "bytes"

// SplitBatch splits an HL7 batch (FHS/BHS ... BTS/FTS) or any run of
// concatenated messages into one slice per message, each running from an
// MSH segment at the start of a line to the line before the next MSH or
// batch segment (FHS, FTS, BHS, BTS), which are dropped. Anything before the
// first MSH is ignored. The slices share data's memory; pass each to Parse.
func SplitBatch(data []byte) [][]byte {
	data = bytes.TrimPrefix(data, bom)
	var out [][]byte
	start := -1
	for off := 0; off < len(data); {
		end := bytes.IndexAny(data[off:], "\r\n")
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		line := data[off:]
		if len(line) >= 3 {
			switch string(line[:3]) {
			case "MSH", "FHS", "FTS", "BHS", "BTS":
				if start >= 0 {
					out = append(out, data[start:off])
					start = -1
				}
				if string(line[:3]) == "MSH" {
					start = off
				}
			}
		}
		off = next
	}
	if start >= 0 {
		out = append(out, data[start:])
	}
	return out
}
