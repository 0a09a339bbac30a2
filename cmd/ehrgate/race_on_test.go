//go:build race

package main

// raceEnabled reports a -race build: the README test then skips (it syncs
// 120 patients three times, minutes under the race detector) and make test
// runs it without -race.
const raceEnabled = true
