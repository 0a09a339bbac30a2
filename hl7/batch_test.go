package hl7

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitBatch(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"single", "MSH|^~\\&|A\rPID|1\r", []string{"MSH|^~\\&|A\rPID|1\r"}},
		{"batch", "FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\r\nPID|2\r\nBTS|2\rFTS|1\r",
			[]string{"MSH|^~\\&|1\rPID|1\r", "MSH|^~\\&|2\r\nPID|2\r\n"}},
		{"msh inside a field is not a boundary", "MSH|^~\\&|1\rPID|1|MSH|x\r", []string{"MSH|^~\\&|1\rPID|1|MSH|x\r"}},
		{"bom and junk", "\xEF\xBB\xBFjunk\nMSH|^~\\&|1\nMSH|^~\\&|2", []string{"MSH|^~\\&|1\n", "MSH|^~\\&|2"}},
		{"none", "PID|1\r", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, b := range SplitBatch([]byte(tt.in)) {
				got = append(got, string(b))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SplitBatch(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
