// Command corpus writes the generated benchmark corpus: `go run ./test/bench/cmd/corpus DIR N`.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/meshguard/meshguard/test/bench"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: corpus DIR N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "corpus: N:", err)
		os.Exit(2)
	}
	if err := bench.Generate(os.Args[1], n); err != nil {
		fmt.Fprintln(os.Stderr, "corpus:", err)
		os.Exit(1)
	}
}
