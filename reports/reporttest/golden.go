package reporttest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the reports' golden files from what is rendered now")

// Golden compares what a test rendered with testdata/NAME, or rewrites the
// file when the test runs with -update (after a deliberate change: look at
// the difference before committing it).
func Golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test -update to write the golden file", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s changed (%d bytes, golden %d): look at what is rendered now, then go test -update", path, len(got), len(want))
	}
}
