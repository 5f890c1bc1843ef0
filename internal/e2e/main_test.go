package e2e

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets the end-to-end tests marked parallel run four at once
// unless -parallel says otherwise: they spend their time waiting on the
// sandbox's documented rate limits, not on the CPU, so the default
// (GOMAXPROCS, 2 on CI) would leave them queued behind each other.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", "4"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
