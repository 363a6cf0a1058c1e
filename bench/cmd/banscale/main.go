// Command banscale measures how long moat's daemon takes to put a large
// store of active bans into the kernel at start, and its memory.
//
//	banscale prepare -db STATE/moat.db [-n 1000000] [-batch 10000] [-for 1h] [-evidence 5]
//	banscale start [-timeout 120s] [-verify] -- MOAT_BIN --config ... --state-dir STATE --run-dir RUN run
//
// prepare writes n active bans (distinct IPv4 /32s from 100.64.0.1 on, each
// with -evidence lines of evidence like a jail's finding) into the store
// with store.AddBans, in batches. It must not run while a daemon uses the
// database.
//
// start runs inside a network namespace (ip netns exec NS banscale start ...)
// as root. It starts the daemon command, then looks up the first and the
// last of the n addresses in the set ban_v4 (one netlink GET each,
// nft.Conn.HasElement) every millisecond until both are there: the restore
// writes each set in one transaction, so both being there means all are.
// It reports the time from starting the daemon to that point, the time
// until the daemon answers on its socket, and the daemon's VmRSS and VmHWM
// (from /proc/PID/status) once the bans are in and again a few seconds
// later. With -verify it counts the set's elements with `nft list set`.
// The daemon is stopped with SIGTERM at the end; its stderr goes to the file
// named by -daemon-log.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/store"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "prepare":
		err = prepare(os.Args[2:])
	case "start":
		err = start(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "banscale:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: banscale prepare -db PATH [-n N] | banscale start [flags] -- MOAT_BIN ... run")
	os.Exit(2)
}

// addrAt is the i-th ban's address: 100.64.0.0/10 counting from .1.
func addrAt(i int) netip.Addr {
	k := uint32(100)<<24 | uint32(64)<<16 + uint32(i) + 1
	return netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
}

func prepare(args []string) error {
	fs := flag.NewFlagSet("prepare", flag.ExitOnError)
	db := fs.String("db", "", "store database (required)")
	n := fs.Int("n", 1000000, "bans")
	batch := fs.Int("batch", 10000, "bans per AddBans call")
	dur := fs.Duration("for", time.Hour, "ban duration from now")
	evidence := fs.Int("evidence", 5, "evidence lines per ban")
	fs.Parse(args)
	if *db == "" || *n < 1 || *n > 1<<22 {
		return errors.New("prepare: -db is required and -n must be in 1..4194304")
	}
	s, err := store.Open(store.Options{Path: *db})
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now()
	start := time.Now()
	for i := 0; i < *n; i += *batch {
		m := min(*batch, *n-i)
		ds := make([]event.Decision, m)
		for j := range ds {
			a := addrAt(i + j)
			ev := make([]string, *evidence)
			for k := range ev {
				ev[k] = fmt.Sprintf("%s bench sshd[%d]: Failed password for invalid user admin from %s port %d ssh2",
					now.Add(time.Duration(k-*evidence)*time.Second).Format(time.Stamp), 10000+j, a, 40000+k)
			}
			ds[j] = event.Decision{Op: event.Ban, Prefix: netip.PrefixFrom(a, 32), Time: now, Duration: *dur, Expires: now.Add(*dur),
				Jail: "sshd", Detector: "jail", Reason: "5 failures in 10m0s", Offence: 1, Evidence: ev}
		}
		if err := s.AddBans(ds); err != nil {
			return err
		}
	}
	fmt.Printf("prepared %d bans (expiring %s) in %v\n", *n, now.Add(*dur).Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	return nil
}

type startResult struct {
	Bans       int     `json:"bans"`
	KernelMS   float64 `json:"kernel_ms"`    // daemon start -> first and last ban in ban_v4
	SocketMS   float64 `json:"socket_ms"`    // daemon start -> socket answers
	RSSMiB     float64 `json:"rss_mib"`      // VmRSS when the bans are in
	HWMMiB     float64 `json:"hwm_mib"`      // VmHWM then
	RSSLateMiB float64 `json:"rss_late_mib"` // VmRSS -settle later
	HWMLateMiB float64 `json:"hwm_late_mib"`
	Counted    int     `json:"counted,omitempty"` // elements of ban_v4 (with -verify)
}

func start(args []string) error {
	fs := flag.NewFlagSet("start", flag.ExitOnError)
	n := fs.Int("n", 1000000, "bans the store holds (prepared with the same -n)")
	table := fs.String("table", "moat", "moat's inet table")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long")
	socket := fs.String("socket", "", "the daemon's socket, to time when it answers")
	settle := fs.Duration("settle", 5*time.Second, "read the RSS again this long after the bans are in")
	verify := fs.Bool("verify", false, "count the elements of ban_v4 with nft at the end")
	daemonLog := fs.String("daemon-log", "", "the daemon's stdout and stderr (default: discarded)")
	jsonOut := fs.String("json", "", "also write the result here")
	fs.Parse(args)
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		return errors.New("start: no daemon command after --")
	}
	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	set := nft.SetRef{Table: *table, Name: "ban_v4"}
	firstP, lastP := netip.PrefixFrom(addrAt(0), 32), netip.PrefixFrom(addrAt(*n-1), 32)
	if ok, _ := c.HasSet(set); ok {
		return fmt.Errorf("set inet %s ban_v4 exists already: use a fresh namespace", *table)
	}

	cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	if *daemonLog != "" {
		f, err := os.Create(*daemonLog)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	res := startResult{Bans: *n}
	sockDone := make(chan time.Duration, 1)
	if *socket != "" {
		go func() {
			for time.Since(t0) < *timeout {
				if conn, err := dialUnix(*socket); err == nil {
					conn.Close()
					sockDone <- time.Since(t0)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	for {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the daemon exited before the bans were in: %v", err)
		default:
		}
		a, _ := c.HasElement(set, firstP)
		b, _ := c.HasElement(set, lastP)
		if a && b {
			res.KernelMS = float64(time.Since(t0)) / 1e6
			break
		}
		if time.Since(t0) > *timeout {
			return fmt.Errorf("bans not in the kernel after %v", *timeout)
		}
		time.Sleep(time.Millisecond)
	}
	res.RSSMiB, res.HWMMiB = memory(cmd.Process.Pid)
	if *socket != "" {
		select {
		case d := <-sockDone:
			res.SocketMS = float64(d) / 1e6
		case <-time.After(*timeout):
		}
	}
	time.Sleep(*settle)
	res.RSSLateMiB, res.HWMLateMiB = memory(cmd.Process.Pid)
	if *verify {
		out, err := exec.Command("nft", "list", "set", "inet", *table, "ban_v4").Output()
		if err != nil {
			return fmt.Errorf("nft list set: %w", err)
		}
		res.Counted = strings.Count(string(out), " expires ")
	}
	fmt.Printf("%d bans in the kernel %.0f ms after the daemon started; socket answering at %.0f ms; VmRSS %.0f MiB (peak %.0f MiB) then, %.0f MiB (peak %.0f MiB) %v later",
		res.Bans, res.KernelMS, res.SocketMS, res.RSSMiB, res.HWMMiB, res.RSSLateMiB, res.HWMLateMiB, *settle)
	if *verify {
		fmt.Printf("; nft lists %d elements in ban_v4", res.Counted)
	}
	fmt.Println()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *verify && res.Counted != *n {
		return fmt.Errorf("nft lists %d elements, want %d", res.Counted, *n)
	}
	return nil
}

// memory returns VmRSS and VmHWM of pid in MiB.
func memory(pid int) (rss, hwm float64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[0], 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

func dialUnix(path string) (net.Conn, error) {
	return net.DialTimeout("unix", path, 100*time.Millisecond)
}
