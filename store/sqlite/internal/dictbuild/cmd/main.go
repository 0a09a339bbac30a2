// Command cmd writes the SQLite store's compression dictionaries:
// go run ./store/sqlite/internal/dictbuild/cmd DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"ehrgate/store/sqlite/internal/dictbuild"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dictbuild DIR")
		os.Exit(2)
	}
	raw, norm, err := dictbuild.Build()
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], "raw-3.s2dict"), raw, 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], "normalized-4.s2dict"), norm, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dictbuild:", err)
		os.Exit(1)
	}
}
