// Command restoreprof times the phases of the daemon's start-up restore
// (store.Open, reading the active bans, the allowlist check, the
// enforcer's Restore into the kernel) in-process, with an optional CPU
// profile, to show where the time of `moat run` with a large store goes.
//
// Run it as root inside a fresh network namespace, on a copy of the
// database (it is opened read-write, as the daemon does):
//
//	ip netns exec NS restoreprof -db COPY.db [-lean] [-cpuprofile cpu.out]
//
// -lean reads the bans with store.ActiveBanExpiries (prefix and expiry
// only) instead of store.ActiveBans, as the daemon's restore does now.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/moat-sec/moat/internal/allowlist"
	"github.com/moat-sec/moat/internal/enforce"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/store"
)

func main() {
	db := flag.String("db", "", "store database (a copy)")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	lean := flag.Bool("lean", false, "read prefixes and expiries only (store.ActiveBanExpiries)")
	cut := flag.Bool("cut", true, "cut conntrack flows of restored bans, as the daemon does")
	flag.Parse()
	if err := run(*db, *cpu, *lean, *cut); err != nil {
		fmt.Fprintln(os.Stderr, "restoreprof:", err)
		os.Exit(1)
	}
}

func run(db, cpu string, lean, cut bool) error {
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	t := time.Now()
	phase := func(name string) {
		fmt.Printf("%-28s %8.1f ms\n", name, float64(time.Since(t))/1e6)
		t = time.Now()
	}
	total := time.Now()

	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.HasSet(firewall.BanSets("moat")[0]); ok {
		return fmt.Errorf("table inet moat exists: use a fresh namespace")
	}
	if err := c.Replace(firewall.CompileBans("moat", 0)); err != nil {
		return err
	}
	phase("nft open + bans table")

	s, err := store.Open(store.Options{Path: db})
	if err != nil {
		return err
	}
	defer s.Close()
	phase("store.Open (quick_check)")

	al := allowlist.New(nil, &allowlist.OwnAddresses{}, &allowlist.Resolvers{}, &allowlist.Gateways{})
	if err := al.Refresh(); err != nil {
		fmt.Fprintln(os.Stderr, "allowlist refresh:", err)
	}
	phase("allowlist refresh")

	type pe struct {
		p   netip.Prefix
		exp time.Time
	}
	var bans []pe
	if lean {
		bs, err := s.ActiveBanExpiries(time.Now())
		if err != nil {
			return err
		}
		for _, b := range bs {
			bans = append(bans, pe{b.Prefix, b.Expires})
		}
		phase(fmt.Sprintf("ActiveBanExpiries (%d)", len(bs)))
	} else {
		bs, err := s.ActiveBans(time.Now())
		if err != nil {
			return err
		}
		for _, b := range bs {
			bans = append(bans, pe{b.Prefix, b.Expires})
		}
		phase(fmt.Sprintf("ActiveBans (%d)", len(bs)))
	}

	eb := make([]enforce.Ban, 0, len(bans))
	for _, b := range bans {
		if al.Overlaps(b.p) {
			continue
		}
		eb = append(eb, enforce.Ban{Prefix: b.p, Expires: b.exp})
	}
	bans = nil
	phase("allowlist.Overlaps loop")

	enf := enforce.New(c, "moat", nil)
	if cut {
		enf.CutFlows(nft.CutFlows, nil)
	}
	if err := enf.Restore(eb); err != nil {
		return err
	}
	phase("enforce.Restore")
	fmt.Printf("%-28s %8.1f ms\n", "total", float64(time.Since(total))/1e6)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("heap in use %.0f MiB, total alloc %.0f MiB, GC cycles %d\n", float64(ms.HeapInuse)/(1<<20), float64(ms.TotalAlloc)/(1<<20), ms.NumGC)
	return nil
}
