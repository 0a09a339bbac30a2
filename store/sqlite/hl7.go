package sqlite

import "ehrgate/store"

// The HL7 v2 message log (store.HL7Log) is the shared one (sqlstore.DB).
// PutHL7 and CompleteHL7 go through the group commit (writer.go): many
// listener connections storing at once share one transaction and one
// fsync, each message under its own savepoint, which is what lets the MLLP
// listener acknowledge only after commit and still take thousands of
// messages a second. The group commit also makes each duplicate check and
// its insert atomic, and Seq grow in commit order.

var _ store.HL7Log = (*Store)(nil)

// Feed statistics and replay (store.HL7Stats) are the shared ones too.
var _ store.HL7Stats = (*Store)(nil)
