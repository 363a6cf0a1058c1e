// Command replayprof runs the same loop as `moat replay` (logtail.Scan,
// authfail.ParseSyslogTime, Jail.Observe) over a log file with a CPU
// profile, to show where the detection time goes.
//
//	go run ./bench/cmd/replayprof -log auth.log -cpuprofile cpu.out [-now 2026-03-18T00:00:00Z]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/moat-sec/moat/internal/detect/authfail"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

func main() {
	logPath := flag.String("log", "", "log file")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	nowFlag := flag.String("now", "2026-03-18T00:00:00Z", "reference time (RFC 3339)")
	passes := flag.Int("passes", 3, "passes over the file (the profile covers all)")
	flag.Parse()
	now, err := time.Parse(time.RFC3339, *nowFlag)
	if err != nil {
		fail(err)
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for range *passes {
		start := time.Now()
		n, found, err := pass(*logPath, now)
		if err != nil {
			fail(err)
		}
		took := time.Since(start)
		fmt.Printf("%d lines in %v (%.0f lines/s), %d findings\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), found)
	}
}

func pass(path string, now time.Time) (int, int, error) {
	f, err := authfail.Builtin("sshd", "")
	if err != nil {
		return 0, 0, err
	}
	j, err := authfail.NewJail(authfail.JailConfig{Name: "replay", Filter: "sshd", MaxRetry: 5, FindTime: 10 * time.Minute}, f)
	if err != nil {
		return 0, 0, err
	}
	file, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer file.Close()
	source := "file:" + path
	last := now
	lines, found := 0, 0
	err = logtail.Scan(file, logtail.DefaultMaxLine, func(line []byte, cut bool) error {
		lines++
		s := string(line)
		t, ok := authfail.ParseSyslogTime(s, now)
		if !ok {
			t = last
		}
		last = t
		if fd := j.Observe(event.Observation{Source: source, Time: t, Line: s, Truncated: cut}); fd != nil {
			found++
		}
		return nil
	})
	return lines, found, err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "replayprof:", err)
	os.Exit(1)
}
