package writeback

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"ehrgate/config"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name          string
		before, after string
		want          []Change
	}{
		{"create", ``, `{"resourceType":"Flag","code":{"coding":[{"code":"x"}]}}`, []Change{
			{Path: "code.coding[0].code", Kind: Added, After: `"x"`},
			{Path: "resourceType", Kind: Added, After: `"Flag"`},
		}},
		{"update", `{"resourceType":"Flag","id":"f1","meta":{"versionId":"2"},"status":"active","note":[{"text":"a"},{"text":"b"}],"period":{"start":"2026"}}`,
			`{"resourceType":"Flag","id":"f1","status":"inactive","note":[{"text":"a"}],"code":{"text":"gap"}}`, []Change{
				{Path: "code.text", Kind: Added, After: `"gap"`},
				{Path: "note[1].text", Kind: Removed, Before: `"b"`},
				{Path: "period.start", Kind: Removed, Before: `"2026"`},
				{Path: "status", Kind: Changed, Before: `"active"`, After: `"inactive"`},
			}},
		{"same", `{"a":[1,2]}`, `{"a":[1,2]}`, nil},
		{"type change", `{"a":{"b":1}}`, `{"a":"x"}`, []Change{{Path: "a", Kind: Changed, Before: `{"b":1}`, After: `"x"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Diff(json.RawMessage(tt.before), json.RawMessage(tt.after))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false}, {ErrRefused, false}, {ErrDryRun, false}, {errRecord, false}, {ErrTransition, false},
		{ErrNotFound, false}, {ErrRateLimited, true}, {errTest("store down"), true},
	} {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// TestOnApproved: the hook is called after each move to approved is
// stored (a person's approval), not for other moves.
func TestOnApproved(t *testing.T) {
	e := newEnv(t, &config.Write{Enabled: true, Types: []string{"Flag"}, Operations: []string{"create"}}, "generic", nil)
	ctx := context.Background()
	var got []string
	e.outbox.OnApproved(func(_ context.Context, r Record) { got = append(got, r.ID+":"+string(r.State)) })
	rec, err := e.writer.Propose(ctx, flagProposal("p1-gap", "active"))
	if err != nil || rec.State != StateProposed {
		t.Fatalf("Propose = %s, %v; want proposed", rec.State, err)
	}
	if len(got) != 0 {
		t.Fatalf("OnApproved called for a proposal: %v", got)
	}
	if _, err := e.outbox.Approve(ctx, rec.ID, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	if want := []string{rec.ID + ":approved"}; !slices.Equal(got, want) {
		t.Errorf("OnApproved calls = %v, want %v", got, want)
	}
}
