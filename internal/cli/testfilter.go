package cli

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/detect/authfail"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

// testFilterCommand is what fail2ban-regex does: run a filter (built-in or
// a pattern) over a log file, without the daemon, and report.
func (e *env) testFilterCommand() *cobra.Command {
	var mode string
	var showMissed, showMatched bool
	cmd := &cobra.Command{
		Use:   "test-filter FILTER|PATTERN LOGFILE",
		Short: "Run a filter over a log file: matched and missed lines, addresses found, time taken",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f *authfail.Filter
			var err error
			if strings.Contains(args[0], "<HOST>") {
				f, err = authfail.Compile("pattern", []string{args[0]}, nil, "")
			} else {
				f, err = authfail.Builtin(args[0], mode)
			}
			if err != nil {
				return usageError{err}
			}
			file, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer file.Close()
			var lines, matched, truncated int
			addrs := map[netip.Addr]int{}
			var matchedLines, missedLines []string
			start := time.Now()
			err = logtail.Scan(file, logtail.DefaultMaxLine, func(line []byte, cut bool) error {
				lines++
				if cut {
					truncated++
				}
				a, ok := f.MatchBytes(line)
				if !ok {
					if showMissed && len(missedLines) < 1000 {
						missedLines = append(missedLines, string(line))
					}
					return nil
				}
				matched++
				addrs[a]++
				if showMatched && len(matchedLines) < 1000 {
					matchedLines = append(matchedLines, string(line))
				}
				return nil
			})
			if err != nil {
				return err
			}
			took := time.Since(start)
			w := e.stdout
			fmt.Fprintf(w, "Filter:  %s (mode %s)\n", f.Name(), f.Mode())
			fmt.Fprintf(w, "Lines:   %d (%d cut at %d bytes)\n", lines, truncated, logtail.DefaultMaxLine)
			fmt.Fprintf(w, "Matched: %d\nMissed:  %d\n", matched, lines-matched)
			rate := 0.0
			if took > 0 {
				rate = float64(lines) / took.Seconds()
			}
			fmt.Fprintf(w, "Time:    %v (%.0f lines/s)\n", took.Round(time.Microsecond), rate)
			type ac struct {
				a netip.Addr
				n int
			}
			var list []ac
			for a, n := range addrs {
				list = append(list, ac{a, n})
			}
			sort.Slice(list, func(i, j int) bool {
				if list[i].n != list[j].n {
					return list[i].n > list[j].n
				}
				return list[i].a.Less(list[j].a)
			})
			fmt.Fprintf(w, "\nAddresses found: %d\n", len(list))
			for i, x := range list {
				if i == 50 {
					fmt.Fprintf(w, "  ... and %d more\n", len(list)-50)
					break
				}
				fmt.Fprintf(w, "  %-40s %d\n", x.a, x.n)
			}
			for _, l := range matchedLines {
				fmt.Fprintf(w, "matched: %s\n", safe(l))
			}
			for _, l := range missedLines {
				fmt.Fprintf(w, "missed:  %s\n", safe(l))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "filter mode (sshd: normal, ddos, extra, aggressive)")
	cmd.Flags().BoolVar(&showMatched, "print-matched", false, "print matched lines")
	cmd.Flags().BoolVar(&showMissed, "print-missed", false, "print lines that did not match")
	return cmd
}
