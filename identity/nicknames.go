package identity

import (
	_ "embed"
	"sort"
	"strings"
	"sync"
)

// nicknamesCSV is the carltonnorthern/nicknames table (Apache License 2.0;
// see data/README.md).
//
//go:embed data/nicknames.csv
var nicknamesCSV string

var (
	nickOnce sync.Once
	// nickGroups maps a normalized given name to the ids of the canonical
	// names it belongs to (a canonical name and each of its nicknames share
	// the canonical name's id).
	nickGroups map[string][]int32
	// groupNames lists the names of each group id.
	groupNames [][]string
)

func loadNicknames() {
	nickGroups = make(map[string][]int32, 4096)
	ids := map[string]int32{}
	add := func(name string, id int32) {
		for _, g := range nickGroups[name] {
			if g == id {
				return
			}
		}
		nickGroups[name] = append(nickGroups[name], id)
		groupNames[id] = append(groupNames[id], name)
	}
	for i, line := range strings.Split(nicknamesCSV, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if i == 0 || len(f) != 3 || f[1] != "has_nickname" {
			continue
		}
		canon, nick := NormalizeName(f[0]), NormalizeName(f[2])
		id, ok := ids[canon]
		if !ok {
			id = int32(len(ids))
			ids[canon] = id
			groupNames = append(groupNames, nil)
		}
		add(canon, id)
		add(nick, id)
	}
}

// Nicknames reports whether two normalized given names are the same name in
// the bundled nickname table: one is a nickname of the other (William and
// Bill) or both are nicknames of one name (Bill and Will).
func Nicknames(a, b string) bool {
	if a == "" || b == "" || a == b {
		return false
	}
	nickOnce.Do(loadNicknames)
	ga, gb := nickGroups[a], nickGroups[b]
	for _, x := range ga {
		for _, y := range gb {
			if x == y {
				return true
			}
		}
	}
	return false
}

// NicknamesOf returns the names the table relates to a normalized given name,
// sorted (for the synthetic generator); nil when it has none.
func NicknamesOf(a string) []string {
	nickOnce.Do(loadNicknames)
	seen := map[string]bool{a: true}
	var out []string
	for _, g := range nickGroups[a] {
		for _, name := range groupNames[g] {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// nickGroupsOf returns the nickname-group ids of a normalized given name.
func nickGroupsOf(a string) []int32 {
	nickOnce.Do(loadNicknames)
	return nickGroups[a]
}

// sharesGroup reports whether two names' nickname groups (nickGroupsOf)
// intersect: Nicknames without the table lookups.
func sharesGroup(ga, gb []int32) bool {
	for _, x := range ga {
		for _, y := range gb {
			if x == y {
				return true
			}
		}
	}
	return false
}

// nearNickname reports whether b is one edit (OneEdit) from a name of a's
// nickname groups (ga) of at least three letters, or a from one of b's
// (gb): a nickname on one record and a misspelt formal name on the other
// ("Kay" and "Kahla" for Kayla, "Jimmy" and "Jmes" for James).
func nearNickname(a string, ga []int32, b string, gb []int32) bool {
	return nearGroup(a, ga, b) || nearGroup(b, gb, a)
}

func nearGroup(a string, ga []int32, b string) bool {
	if len(b) < 3 {
		return false
	}
	for _, g := range ga {
		for _, n := range groupNames[g] {
			if len(n) >= 3 && n != a && OneEdit(n, b) {
				return true
			}
		}
	}
	return false
}
