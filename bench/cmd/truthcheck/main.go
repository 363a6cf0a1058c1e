// Command truthcheck compares `moat replay --json` findings with the ground
// truth written by bench/authlog.
//
//	truthcheck -truth truth.json -findings moat.json
//
// A finding counts for its source: an IPv4 /32, an IPv6 address masked to
// the truth's ipv6_prefix. It prints expected, found, false positives (found
// but not in the truth's ban list), misses (in the ban list, never found)
// and hits on the never list (injection victims, legitimate users...), and
// exits 1 unless the findings match the truth exactly.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/moat-sec/moat/internal/detect/authfail/authlog"
)

func main() {
	truthPath := flag.String("truth", "", "ground truth (JSON from bench/authlog)")
	findPath := flag.String("findings", "", "findings, JSON lines {\"addr\":...} from moat replay --json")
	asJSON := flag.Bool("json", false, "print the counts as one JSON object")
	flag.Parse()
	var tr authlog.Truth
	b, err := os.ReadFile(*truthPath)
	if err != nil {
		fail(err)
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		fail(err)
	}
	f, err := os.Open(*findPath)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	found := map[string]bool{}
	findings := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var x struct{ Addr string }
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			fail(fmt.Errorf("findings: %w", err))
		}
		a, err := netip.ParseAddr(x.Addr)
		if err != nil {
			fail(fmt.Errorf("findings: %w", err))
		}
		findings++
		p := netip.PrefixFrom(a, 32)
		if a.Is6() {
			p, _ = a.Prefix(tr.IPv6Prefix)
		}
		found[p.String()] = true
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	want := map[string]bool{}
	for _, k := range tr.Ban {
		want[k] = true
	}
	var fps, misses, never []string
	for k := range found {
		if !want[k] {
			fps = append(fps, k)
		}
	}
	for k := range want {
		if !found[k] {
			misses = append(misses, k)
		}
	}
	for _, k := range tr.Never {
		if found[k] {
			never = append(never, k)
		}
	}
	slices.Sort(fps)
	slices.Sort(misses)
	slices.Sort(never)
	exact := len(fps) == 0 && len(misses) == 0 && len(never) == 0
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{
			"expected": len(tr.Ban), "found": len(found), "findings": findings, "false_positives": len(fps),
			"misses": len(misses), "never_list": len(tr.Never), "never_hit": len(never), "exact": exact,
		})
	} else {
		fmt.Printf("expected %d, found %d (%d findings), false positives %d, misses %d, never-ban list %d, of which found %d: %s\n",
			len(tr.Ban), len(found), findings, len(fps), len(misses), len(tr.Never), len(never), map[bool]string{true: "EXACT", false: "MISMATCH"}[exact])
	}
	for _, k := range fps {
		fmt.Fprintln(os.Stderr, "false positive:", k)
	}
	for _, k := range misses {
		fmt.Fprintln(os.Stderr, "missed:", k)
	}
	for _, k := range never {
		fmt.Fprintln(os.Stderr, "never-ban source found:", k)
	}
	if !exact {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "truthcheck:", err)
	os.Exit(2)
}
