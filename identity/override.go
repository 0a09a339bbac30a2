package identity

import "time"

// Action is a person's decision about two records.
type Action string

// Override actions.
const (
	// ActionLink: the two records are one person, whatever the scores.
	ActionLink Action = "link"
	// ActionUnlink: the two records are never in one cluster.
	ActionUnlink Action = "unlink"
)

// Override is a person's link or unlink decision, kept with who made it,
// when and why, and respected by every later run. Reason must not contain
// patient data.
type Override struct {
	A      Key       `json:"a"`
	B      Key       `json:"b"`
	Action Action    `json:"action"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}
