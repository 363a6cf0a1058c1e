package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden compiles each testdata/*.toml policy and compares the nft text
// with testdata/*.nft.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.toml")
	if len(files) == 0 {
		t.Fatal("no policies")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ld, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := Compile(ld.Policy)
			if err != nil {
				t.Fatal(err)
			}
			got := tbl.Text()
			golden := strings.TrimSuffix(f, ".toml") + ".nft"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-want +got; go test -update to accept):\n%s", golden, diff)
			}
		})
	}
}

func TestLimitOf(t *testing.T) {
	for _, c := range []struct {
		in    policy.Rate
		rate  uint64
		unit  time.Duration
		burst uint32
	}{
		{policy.Rate{Count: 6, Per: 30 * time.Second}, 12, time.Minute, 6},
		{policy.Rate{Count: 5, Per: time.Second}, 5, time.Second, 5},
		{policy.Rate{Count: 10, Per: time.Minute}, 10, time.Minute, 10},
		{policy.Rate{Count: 3, Per: 7 * time.Second}, 37029, 24 * time.Hour, 3},
		{policy.Rate{Count: 1, Per: 24 * time.Hour}, 1, 24 * time.Hour, 1},
	} {
		r, u, b := limitOf(c.in)
		if r != c.rate || u != c.unit || b != c.burst {
			t.Errorf("limitOf(%v) = %d/%v burst %d, want %d/%v burst %d", c.in, r, u, b, c.rate, c.unit, c.burst)
		}
	}
}

func TestNormalise(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.5/32"), netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("198.51.100.128/25"),
	}
	got := normalise(in)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("198.51.100.128/25"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("normalise: %s", diff)
	}
}

func TestRuleNumber(t *testing.T) {
	for c, want := range map[string]int{"moat rule 3": 3, "moat rule 12: ssh from office": 12, "moat guard in invalid": 0, "moat rule x": 0} {
		n, ok := RuleNumber(c)
		if n != want || ok != (want > 0) {
			t.Errorf("RuleNumber(%q) = %d, %v", c, n, ok)
		}
	}
	if n, _ := RuleNumber(RuleComment(7)); n != 7 {
		t.Errorf("round trip: %d", n)
	}
}
