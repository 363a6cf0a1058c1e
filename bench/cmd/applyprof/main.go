// Command applyprof times the phases of `moat up --force` in-process, to see
// where the time of an apply goes (bench/fw-apply.sh times the whole
// command). It does what internal/cli's apply does without a confirm wait:
//
//	load      config.Load (read and parse the TOML, resolve, validate)
//	compile   firewall.Compile
//	open      confirm lock, nft.Open (netlink socket, GetGen)
//	prev      the previous ruleset: read applied.json, check the table exists
//	replace   nft.Conn.Replace (encode to netlink messages, send, kernel commit)
//	save      write applied.json (JSON encode, write, fsync, rename)
//	close     close the netlink socket, release the lock
//
// Run it only inside a network namespace you created:
//
//	ip netns exec NS applyprof -config moat.toml -state DIR [-n 5] [-cpuprofile FILE]
//
// Each iteration replaces the table of the previous one (the first creates
// it); the first iteration is reported separately.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/confirm"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
)

var phases = []string{"load", "compile", "open", "prev", "replace", "save", "close", "total"}

func main() {
	cfg := flag.String("config", "", "policy file")
	state := flag.String("state", "", "directory for state and run dirs")
	n := flag.Int("n", 5, "iterations")
	prof := flag.String("cpuprofile", "", "write a CPU profile of all iterations but the first")
	flag.Parse()
	if *cfg == "" || *state == "" {
		flag.Usage()
		os.Exit(2)
	}
	st := &confirm.Store{StateDir: filepath.Join(*state, "state"), RunDir: filepath.Join(*state, "run")}
	var runs [][]time.Duration
	for i := 0; i < *n; i++ {
		if i == 1 && *prof != "" {
			f, err := os.Create(*prof)
			check(err)
			check(pprof.StartCPUProfile(f))
			defer pprof.StopCPUProfile()
		}
		runs = append(runs, once(*cfg, st))
	}
	pprof.StopCPUProfile()
	fmt.Printf("%-8s %10s %10s\n", "phase", "first ms", "median ms")
	for p, name := range phases {
		var rest []time.Duration
		for _, r := range runs[1:] {
			rest = append(rest, r[p])
		}
		slices.Sort(rest)
		med := time.Duration(0)
		if len(rest) > 0 {
			med = rest[(len(rest)-1)/2]
		}
		fmt.Printf("%-8s %10.2f %10.2f\n", name, ms(runs[0][p]), ms(med))
	}
	extras(*cfg, st)
}

// extras times parts of the phases, for comparison: decoding the TOML alone
// (what load costs without the position index and validation), and reading
// only the table name from applied.json (all that prev needs to know).
func extras(cfg string, st *confirm.Store) {
	data, err := os.ReadFile(cfg)
	check(err)
	t0 := time.Now()
	f := config.Defaults()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	check(dec.Decode(&f))
	decode := time.Since(t0)
	applied, err := os.ReadFile(filepath.Join(st.StateDir, "applied.json"))
	check(err)
	t0 = time.Now()
	var name struct{ Name string }
	check(json.Unmarshal(applied, &name))
	nameOnly := time.Since(t0)
	fmt.Printf("extra: toml decode alone %.2f ms (%d bytes); applied.json %d bytes, name-only json decode %.2f ms\n",
		ms(decode), len(data), len(applied), ms(nameOnly))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "applyprof:", err)
		os.Exit(1)
	}
}

func once(cfg string, st *confirm.Store) []time.Duration {
	var ts []time.Duration
	start := time.Now()
	last := start
	mark := func() {
		now := time.Now()
		ts = append(ts, now.Sub(last))
		last = now
	}
	ld, err := config.Load(cfg)
	check(err)
	mark()
	tbl, err := firewall.Compile(ld.Policy)
	check(err)
	mark()
	unlock, err := st.Lock()
	check(err)
	conn, err := nft.Open()
	check(err)
	mark()
	prev, err := st.Applied()
	check(err)
	if prev != nil {
		_, err := conn.Exists(prev.Name)
		check(err)
	}
	check(st.Cancel())
	mark()
	check(conn.Replace(tbl))
	mark()
	check(st.SetApplied(tbl))
	mark()
	conn.Close()
	unlock()
	mark()
	ts = append(ts, time.Since(start))
	return ts
}
