package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/policy"
)

// Status is what `moat status --json` prints.
type Status struct {
	Active   bool              `json:"active"`
	Table    string            `json:"table"`
	Pending  *PendingStatus    `json:"pending,omitempty"`
	Defaults map[string]string `json:"defaults"`
	Logging  string            `json:"logging"`
	Rules    []RuleStatus      `json:"rules"`
	Guards   []CounterStatus   `json:"guards,omitempty"`
	// Redirects are the [[redirect]] tables; Packets counts the
	// connections each sent to its honeypot.
	Redirects []CounterStatus  `json:"redirects,omitempty"`
	Findings  []policy.Finding `json:"findings,omitempty"`
	Daemon    *api.Status      `json:"daemon,omitempty"` // nil: not running
}

// PendingStatus describes an apply awaiting `moat confirm`.
type PendingStatus struct {
	Deadline time.Time `json:"deadline"`
}

// RuleStatus is one policy rule with its kernel counters.
type RuleStatus struct {
	Number    int    `json:"number"`
	Rule      string `json:"rule"`
	Action    string `json:"action"`
	Direction string `json:"direction"`
	Comment   string `json:"comment,omitempty"`
	Source    string `json:"source"`
	Managed   bool   `json:"managed"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// CounterStatus is a guard's or a default's counter.
type CounterStatus struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (e *env) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [numbered|verbose]",
		Short: "Show whether the firewall is active, its defaults, and every rule with its counters",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := ""
			if len(args) == 1 {
				mode = args[0]
				if mode != "numbered" && mode != "verbose" {
					return usagef("status: want numbered or verbose, not %q", mode)
				}
			}
			st, err := e.status()
			if err != nil {
				return err
			}
			if ds, err := e.client().Status(); err == nil {
				st.Daemon = &ds
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printStatus(e, st, mode)
			}
			if st.Daemon != nil && !st.Daemon.Healthy {
				return errUnhealthy
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (e *env) status() (*Status, error) {
	ld, err := e.load()
	if err != nil {
		return nil, err
	}
	p := ld.Policy
	st := &Status{
		Table:    p.Table,
		Defaults: map[string]string{"incoming": p.Incoming.String(), "outgoing": p.Outgoing.String(), "routed": p.Routed.String()},
		Logging:  p.Logging.Level.String(),
		Findings: policy.Lint(p),
	}
	if pend, err := e.store().Pending(); err != nil {
		return nil, err
	} else if pend != nil {
		st.Pending = &PendingStatus{Deadline: pend.Deadline}
	}
	conn, err := nft.Open()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if st.Active, err = conn.Exists(p.Table); err != nil {
		return nil, err
	}
	var live []nft.LiveRule
	if st.Active {
		if live, err = conn.Rules(p.Table); err != nil {
			return nil, err
		}
	}
	byRule := map[int]*CounterStatus{}
	byName := map[string]*CounterStatus{}
	var order []string
	for _, lr := range live {
		if n, ok := firewall.RuleNumber(lr.Comment); ok {
			c := byRule[n]
			if c == nil {
				c = &CounterStatus{}
				byRule[n] = c
			}
			c.Packets += lr.Packets
			c.Bytes += lr.Bytes
			continue
		}
		if lr.Comment == "" {
			continue
		}
		c := byName[lr.Comment]
		if c == nil {
			c = &CounterStatus{Name: strings.TrimPrefix(lr.Comment, "moat ")}
			byName[lr.Comment] = c
			order = append(order, lr.Comment)
		}
		c.Packets += lr.Packets
		c.Bytes += lr.Bytes
	}
	for _, name := range order {
		st.Guards = append(st.Guards, *byName[name])
	}
	for i := range p.Redirects {
		c := CounterStatus{Name: p.Redirects[i].Summary()}
		if k := byName[firewall.RedirectComment(i+1)]; k != nil {
			c.Packets, c.Bytes = k.Packets, k.Bytes
		}
		st.Redirects = append(st.Redirects, c)
	}
	specs := append([]string{}, make([]string, 0)...)
	for i := range ld.File.Rules {
		specs = append(specs, ld.File.Rules[i].String())
	}
	for i := range ld.Managed {
		specs = append(specs, ld.Managed[i].String())
	}
	for i, r := range p.Rules {
		rs := RuleStatus{
			Number: i + 1, Action: r.Action.String(), Direction: r.Direction.String(), Comment: r.Comment,
			Source: fmt.Sprintf("%s:%d", r.Origin.File, r.Origin.Line), Managed: r.Origin.Managed,
		}
		if i < len(specs) {
			rs.Rule = specs[i]
		}
		if c := byRule[i+1]; c != nil {
			rs.Packets, rs.Bytes = c.Packets, c.Bytes
		}
		st.Rules = append(st.Rules, rs)
	}
	return st, nil
}

// errUnhealthy makes `moat status` exit non-zero when the daemon runs but
// does not protect (a dead source, missing kernel sets, a rebuilt store).
var errUnhealthy = errors.New("the daemon is unhealthy")

func printDaemon(e *env, d *api.Status) {
	w := e.stdout
	state := "healthy"
	if !d.Healthy {
		state = "UNHEALTHY"
	}
	fmt.Fprintf(w, "\nDaemon: running since %s, %s\n", d.Started.Local().Format(time.DateTime), state)
	for _, p := range d.Problems {
		fmt.Fprintf(w, "  problem: %s\n", safe(p))
	}
	fmt.Fprintf(w, "  kernel: table inet %s, ban sets present=%v, %d bans, %d repairs\n", d.Kernel.Table, d.Kernel.Present, d.Kernel.Bans, d.Kernel.Repairs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(d.Sources) > 0 {
		fmt.Fprintln(tw, "  Source\tFollowing\tLines\tCut\tLast line\tError")
		for _, s := range d.Sources {
			last := "-"
			if !s.LastLine.IsZero() {
				last = time.Since(s.LastLine).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(tw, "  %s\t%v\t%d\t%d\t%s\t%s\n", safe(s.ID), s.Following, s.Lines, s.Truncated, last, safe(s.Error))
		}
	}
	if len(d.TopScanners) > 0 {
		fmt.Fprintln(tw, "  Top scanners\tDanger\tPorts\tType\tAction\t")
		for _, s := range d.TopScanners {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t\n", s.Src, s.Danger, s.PortCount, strings.Join(s.Types, "; "), s.Action)
		}
	}
	if len(d.TopPorts) > 0 {
		fmt.Fprintln(tw, "  Top scanned ports\tSources\t\t\t\t")
		for _, p := range d.TopPorts {
			fmt.Fprintf(tw, "  %d/%s\t%d\t\t\t\t\n", p.Port, p.Proto, p.Sources)
		}
	}
	if d.TrapHits > 0 {
		fmt.Fprintf(tw, "  Trap connections\t%d\t\t\t\t\n", d.TrapHits)
	}
	if d.TrapChallenges > 0 {
		fmt.Fprintf(tw, "  UDP trap replies\t%d\tproven\t%d\t\t\n", d.TrapChallenges, d.TrapProven)
	}
	if len(d.Jails) > 0 {
		fmt.Fprintln(tw, "  Jail\tFilter\tLines\tMatches\tBanned now\tBans total\t")
		for _, j := range d.Jails {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t\n", j.Name, j.Filter, j.Lines, j.Matches, j.CurrentBans, j.TotalBans)
		}
	}
	tw.Flush()
}

func printStatus(e *env, st *Status, mode string) {
	defer func() {
		if st.Daemon != nil {
			printDaemon(e, st.Daemon)
		} else {
			fmt.Fprintln(e.stdout, "\nDaemon: not running")
		}
	}()
	w := e.stdout
	if st.Active {
		fmt.Fprintf(w, "Status: active (table inet %s)\n", st.Table)
	} else {
		fmt.Fprintln(w, "Status: inactive")
	}
	if st.Pending != nil {
		fmt.Fprintf(w, "Pending: rolls back at %s unless `moat confirm`\n", st.Pending.Deadline.Format(time.TimeOnly))
	}
	fmt.Fprintf(w, "Default: %s (incoming), %s (outgoing), %s (routed)\n", st.Defaults["incoming"], st.Defaults["outgoing"], st.Defaults["routed"])
	fmt.Fprintf(w, "Logging: %s\n\n", st.Logging)
	if len(st.Rules) == 0 {
		fmt.Fprintln(w, "No rules.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if mode == "numbered" || mode == "verbose" {
			fmt.Fprint(tw, "#\t")
		}
		fmt.Fprint(tw, "Rule\tPackets\tBytes")
		if mode == "verbose" {
			fmt.Fprint(tw, "\tSource")
		}
		fmt.Fprintln(tw)
		for _, r := range st.Rules {
			if mode == "numbered" || mode == "verbose" {
				fmt.Fprintf(tw, "[%2d]\t", r.Number)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d", r.Rule, r.Packets, r.Bytes)
			if mode == "verbose" {
				fmt.Fprintf(tw, "\t%s", r.Source)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if len(st.Redirects) > 0 {
		fmt.Fprintln(w, "\nRedirects to honeypots:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Redirect\tConnections")
		for _, r := range st.Redirects {
			fmt.Fprintf(tw, "%s\t%d\n", r.Name, r.Packets)
		}
		tw.Flush()
	}
	if mode == "verbose" && len(st.Guards) > 0 {
		fmt.Fprintln(w, "\nGuards and defaults:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Name\tPackets\tBytes")
		for _, g := range st.Guards {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", g.Name, g.Packets, g.Bytes)
		}
		tw.Flush()
	}
	for _, f := range st.Findings {
		fmt.Fprintf(w, "%s: %s\n", f.Severity, f.Msg)
	}
}
