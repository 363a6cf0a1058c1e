package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/detect/portscan"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/kmsg"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

func (e *env) scansCommand() *cobra.Command {
	var asJSON bool
	var fromLog string
	cmd := &cobra.Command{
		Use:   "scans",
		Short: "Current and recent scanners: source, first and last seen, ports, type, danger, OS guess, action",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var scans []api.Scan
			var err error
			if fromLog != "" {
				scans, err = scansFromLog(fromLog)
			} else {
				scans, err = e.client().Scans()
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e, scans)
			}
			printScans(e, scans)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&fromLog, "from-log", "", "classify netfilter LOG lines from a kernel log file instead (forensics on old logs)")
	return cmd
}

func printScans(e *env, scans []api.Scan) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Source\tFirst\tLast\tPorts\tType\tDanger\tOS\tAction")
	for _, s := range scans {
		ports := fmt.Sprint(s.PortCount)
		if len(s.Ports) > 0 && len(s.Ports) <= 6 {
			ports = strings.Trim(strings.ReplaceAll(fmt.Sprint(s.Ports), " ", ","), "[]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Src, s.First.Local().Format(time.TimeOnly), s.Last.Local().Format(time.TimeOnly),
			ports, strings.Join(s.Types, "; "), s.Danger, s.OSGuess, s.Action)
	}
	tw.Flush()
}

// scansFromLog runs the classifier over kernel-log LOG lines.
func scansFromLog(path string) ([]api.Scan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	det := portscan.New(portscan.Config{})
	now := time.Now()
	last := now
	err = logtail.Scan(f, logtail.DefaultMaxLine, func(line []byte, _ bool) error {
		s := string(line)
		pkt, prefix, ok := kmsg.Parse(s)
		if !ok {
			return nil
		}
		det.Observe(event.Observation{Source: "file:" + path, Time: last, Line: s, Packet: &pkt, Prefix: prefix})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []api.Scan
	for _, s := range det.Scans(last) {
		out = append(out, api.Scan{Src: s.Src, First: s.First, Last: s.Last, Packets: s.Packets, Ports: s.Ports, PortCount: s.PortCount,
			Protocols: s.Protocols, Types: s.Types, Danger: s.Danger, OSGuess: s.OSGuess, Action: "from log"})
	}
	return out, nil
}
