package nft

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got, go test -update rewrites it):\n%s", path, diff)
	}
}

func TestTextGolden(t *testing.T) {
	tbl := allTable()
	if err := tbl.Validate(); err != nil {
		t.Fatalf("fixture does not validate: %v", err)
	}
	golden(t, "all.nft", tbl.Text())
}

func TestTextInvalidDoesNotPanic(t *testing.T) {
	tbl := &Table{Name: "x", Sets: []*Set{nil}, Chains: []*Chain{nil, {Name: "c", Rules: []*Rule{
		nil,
		{Exprs: []Expr{nil, (*Addr)(nil), &Limit{Rate: 1, Unit: 3 * time.Second}, &Meter{Set: "m"}, &Verdict{Kind: 99}}},
	}}}}
	if err := tbl.Validate(); err == nil {
		t.Error("Validate accepted a table with nil parts")
	}
	got := tbl.Text()
	for _, want := range []string{"<invalid: nil set>", "<invalid: nil chain>", "<invalid: nil rule>", "<invalid: nil expression>", "<invalid unit 3s>", "<invalid: *nft.Verdict>"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text() lacks %q:\n%s", want, got)
		}
	}
}
