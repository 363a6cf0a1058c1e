package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/daemon"
)

// client returns an API client for the daemon's socket.
func (e *env) client() *api.Client {
	sock := filepath.Join(e.runDir, "moat.sock")
	if ld, err := config.Load(e.configPath); err == nil && ld.Daemon.Socket != "" {
		sock = ld.Daemon.Socket
	}
	return api.NewClient(sock)
}

func (e *env) runCommand() *cobra.Command {
	var jsonLogs bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: follow logs, ban offenders in the kernel, serve the local API",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h slog.Handler = slog.NewTextHandler(e.stderr, nil)
			if jsonLogs {
				h = slog.NewJSONHandler(e.stderr, nil)
			}
			return daemon.Run(cmd.Context(), daemon.Options{ConfigPath: e.configPath, StateDir: e.stateDir, RunDir: e.runDir, Logger: slog.New(h)})
		},
	}
	cmd.Flags().BoolVar(&jsonLogs, "json-logs", false, "log as JSON lines")
	return cmd
}

func (e *env) banCommand() *cobra.Command {
	var dur string
	var reason string
	var force bool
	cmd := &cobra.Command{
		Use:   "ban ADDR|CIDR",
		Short: "Ban an address or a network (through the allowlist, like every ban)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := api.ParsePrefix(args[0])
			if err != nil {
				return usageError{err}
			}
			req := api.BanRequest{Prefix: p, Reason: reason, Force: force}
			switch dur {
			case "":
			case "permanent", "forever":
				req.Duration = -1
			default:
				if req.Duration, err = config.ParseDuration(dur); err != nil || req.Duration <= 0 {
					return usagef("--for %q: want a duration like 1h or 7d, or permanent", dur)
				}
			}
			b, err := e.client().Ban(req)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Banned %s until %s\n", b.Prefix, expiryText(b.Expires))
			return nil
		},
	}
	cmd.Flags().StringVar(&dur, "for", "", "ban duration (e.g. 1h, 7d, permanent); default: [bans] bantime")
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown in `moat bans`)")
	cmd.Flags().BoolVar(&force, "force", false, "ban even an allowlisted address")
	return cmd
}

func expiryText(t time.Time) string {
	if t.IsZero() {
		return "forever"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func (e *env) unbanCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unban ADDR|CIDR | --all",
		Short: "Lift a ban, or all of them",
		Args: usageArgs(func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return errors.New("want one address or prefix, or --all")
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			if all {
				n, err := c.UnbanAll()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Lifted %d bans\n", n)
				return nil
			}
			p, err := api.ParsePrefix(args[0])
			if err != nil {
				return usageError{err}
			}
			if err := c.Unban(p); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Unbanned %s\n", p)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "lift every ban")
	return cmd
}

func (e *env) bansCommand() *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "bans",
		Short: "List active bans",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bans, err := e.client().Bans(limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e, bans)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Prefix\tJail\tExpires\tOffence\tReason")
			for _, b := range bans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.Prefix, safe(b.Jail), expiryText(b.Expires), b.Offence, safe(b.Reason))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many, the most recent first (0: all)")
	return cmd
}

// safe makes attacker-influenced text harmless on a terminal: control
// characters (escape sequences) are shown as \xNN.
func safe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) jailsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "jails",
		Short: "Per jail: lines read, matches, current and total bans",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := e.client().Status()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e, st.Jails)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Jail\tFilter\tLines\tMatches\tRefused\tBanned now\tBans total")
			for _, j := range st.Jails {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", j.Name, j.Filter, j.Lines, j.Matches, j.Refused, j.CurrentBans, j.TotalBans)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (e *env) allowlistCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "allowlist", Short: "Addresses no engine may ban"}
	var comment string
	add := &cobra.Command{
		Use:   "add ADDR|CIDR",
		Short: "Add to the runtime allowlist (and lift its bans)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := api.ParsePrefix(args[0])
			if err != nil {
				return usageError{err}
			}
			n, err := e.client().AllowlistAdd(api.AllowRequest{Prefix: p, Comment: comment})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Allowlisted %s (lifted %d bans)\n", p, n)
			return nil
		},
	}
	add.Flags().StringVar(&comment, "comment", "", "why")
	remove := &cobra.Command{
		Use:   "remove ADDR|CIDR",
		Short: "Remove from the runtime allowlist",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := api.ParsePrefix(args[0])
			if err != nil {
				return usageError{err}
			}
			if err := e.client().AllowlistRemove(p); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed %s\n", p)
			return nil
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the allowlist, every source included",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := e.client().Allowlist()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e, es)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Prefix\tWhy\tComment")
			for _, en := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", en.Prefix, en.Why, safe(en.Comment))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, remove, list)
	return cmd
}

func (e *env) reloadCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the daemon reload its configuration (a broken one is refused and the old keeps running)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := e.client().Reload(); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "Reloaded.")
			return nil
		},
	}
}
