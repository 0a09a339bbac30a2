// Command cmd writes the SQLite store's compression dictionaries:
// go run ./store/sqlite/internal/dictbuild/cmd DIR RAWID NORMID
//
// Give new ids (the next free numbers): released dictionaries never change,
// since stored rows name theirs. Then embed the files in pack.go, record
// their hashes in pack_test.go and move new rows to them.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"ehrgate/store/sqlite/internal/dictbuild"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: dictbuild DIR RAWID NORMID")
		os.Exit(2)
	}
	for _, name := range []string{"raw-" + os.Args[2], "normalized-" + os.Args[3]} {
		if _, err := os.Stat(filepath.Join(os.Args[1], name+".s2dict")); err == nil {
			fmt.Fprintf(os.Stderr, "dictbuild: %s.s2dict is released and must not change; give new ids\n", name)
			os.Exit(2)
		}
	}
	raw, norm, err := dictbuild.Build()
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], "raw-"+os.Args[2]+".s2dict"), raw, 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], "normalized-"+os.Args[3]+".s2dict"), norm, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dictbuild:", err)
		os.Exit(1)
	}
}
