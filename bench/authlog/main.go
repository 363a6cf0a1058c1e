// Command authlog writes a deterministic synthetic sshd auth.log and its ground truth, for the auth-failure benchmark.
//
//	go run ./bench/authlog -out auth.log -truth truth.json [-lines 1000000] [-seed 1]
//
// The truth (JSON) lists the sources a jail with the sshd filter in normal
// mode, maxretry 5 and findtime 10m must ban, and those it must never ban
// (injection victims, legitimate users, slow guessers, IPv6 neighbours).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/moat-sec/moat/internal/detect/authfail/authlog"
)

func main() {
	out := flag.String("out", "", "write the log to this file (required)")
	truth := flag.String("truth", "", "write the ground truth (JSON) to this file (required)")
	lines := flag.Int("lines", 1000000, "number of lines")
	seed := flag.Uint64("seed", 1, "random seed")
	maxRetry := flag.Int("maxretry", 5, "jail maxretry the truth is for")
	findTime := flag.Duration("findtime", 10*time.Minute, "jail findtime the truth is for")
	prefix := flag.Int("ipv6-prefix", 64, "IPv6 prefix the jail counts by")
	flag.Parse()
	if *out == "" || *truth == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *truth, authlog.Config{Seed: *seed, Lines: *lines, MaxRetry: *maxRetry, FindTime: *findTime, IPv6Prefix: *prefix}); err != nil {
		fmt.Fprintln(os.Stderr, "authlog:", err)
		os.Exit(1)
	}
}

func run(out, truthPath string, cfg authlog.Config) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tr, err := authlog.Generate(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(truthPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "authlog: %d lines (%s to %s), %d sources to ban, %d never to ban\n",
		tr.Lines, tr.Start.Format(time.DateTime), tr.End.Format(time.DateTime), len(tr.Ban), len(tr.Never))
	return nil
}
