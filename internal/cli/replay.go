package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/detect/authfail"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

// replayCommand runs a jail over a finished log with the daemon's own
// detection code, on the log's timestamps: what would have been banned.
func (e *env) replayCommand() *cobra.Command {
	var jailName, filter, mode, nowFlag string
	var maxRetry int
	var findTime string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay LOGFILE",
		Short: "Run a jail over a finished log (on the log's own timestamps) and print the bans it would make",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			jc := authfail.JailConfig{Name: "replay", Filter: filter, Mode: mode, MaxRetry: maxRetry}
			var err error
			if jailName != "" {
				ld, err := config.Load(e.configPath)
				if err != nil {
					return err
				}
				found := false
				for _, j := range ld.Jails {
					if j.Name == jailName {
						jc = authfail.JailConfig{Name: j.Name, Filter: j.Filter, Mode: j.Mode, MaxRetry: j.MaxRetry, FindTime: j.FindTime, IPv6Prefix: ld.Bans.IPv6Prefix}
						found = true
					}
				}
				if !found {
					return usagef("no enabled jail %q in %s", jailName, e.configPath)
				}
			} else if jc.FindTime, err = config.ParseDuration(findTime); err != nil {
				return usagef("--findtime: %v", err)
			}
			f, err := authfail.Builtin(jc.Filter, jc.Mode)
			if err != nil {
				return usageError{err}
			}
			jail, err := authfail.NewJail(jc, f)
			if err != nil {
				return usageError{err}
			}
			now := time.Now()
			if nowFlag != "" {
				if now, err = time.Parse(time.RFC3339, nowFlag); err != nil {
					return usagef("--now: want RFC 3339, e.g. 2026-11-21T12:00:00Z")
				}
			}
			file, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			source := "file:" + args[0]
			last := now
			var findings []event.Finding
			lines := 0
			start := time.Now()
			err = logtail.Scan(file, logtail.DefaultMaxLine, func(line []byte, cut bool) error {
				lines++
				s := string(line)
				t, ok := authfail.ParseSyslogTime(s, now)
				if !ok {
					t = last
				}
				last = t
				if f := jail.Observe(event.Observation{Source: source, Time: t, Line: s, Truncated: cut}); f != nil {
					findings = append(findings, *f)
				}
				return nil
			})
			if err != nil {
				return err
			}
			took := time.Since(start)
			if asJSON {
				type out struct {
					Addr   string    `json:"addr"`
					Time   time.Time `json:"time"`
					Reason string    `json:"reason"`
				}
				enc := json.NewEncoder(e.stdout)
				for _, f := range findings {
					if err := enc.Encode(out{Addr: f.Addr.String(), Time: f.Time, Reason: f.Reason}); err != nil {
						return err
					}
				}
			} else {
				for _, f := range findings {
					fmt.Fprintf(e.stdout, "%s  ban %-40s %s\n", f.Time.Format(time.RFC3339), f.Addr, safe(f.Reason))
				}
			}
			st := jail.Stats()
			fmt.Fprintf(e.stderr, "%d lines in %v (%.0f lines/s): %d matches, %d findings\n",
				lines, took.Round(time.Millisecond), float64(lines)/max(took.Seconds(), 1e-9), st.Matches, len(findings))
			return nil
		},
	}
	cmd.Flags().StringVar(&jailName, "jail", "", "use this jail of the policy")
	cmd.Flags().StringVar(&filter, "filter", "sshd", "built-in filter (without --jail)")
	cmd.Flags().StringVar(&mode, "mode", "", "filter mode")
	cmd.Flags().IntVar(&maxRetry, "maxretry", 5, "failures before a ban (without --jail)")
	cmd.Flags().StringVar(&findTime, "findtime", "10m", "window (without --jail)")
	cmd.Flags().StringVar(&nowFlag, "now", "", "reference time for year-less timestamps (default: now)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print findings as JSON lines")
	return cmd
}
