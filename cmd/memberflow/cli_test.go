package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpIsPrintedOnce(t *testing.T) {
	for _, args := range [][]string{{"validate", "--help"}, {"run", "-h"}, {"help", "connectors"}} {
		var out, errOut bytes.Buffer
		code := runCLI(args, stdio{in: strings.NewReader(""), out: &out, err: &errOut})
		if code != exitOK {
			t.Errorf("%v: exit %d", args, code)
		}
		if n := strings.Count(out.String()+errOut.String(), "Usage:"); n != 1 {
			t.Errorf("%v: usage printed %d times:\n%s%s", args, n, out.String(), errOut.String())
		}
	}
}
