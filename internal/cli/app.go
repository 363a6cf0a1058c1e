package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/appprofile"
	"github.com/moat-sec/moat/internal/config"
)

// apps returns the catalogue the policy uses, or the built-in one when the
// policy cannot be read (listing profiles should not need a valid policy).
func (e *env) apps() *appprofile.Catalogue {
	if ld, err := config.Load(e.configPath); err == nil {
		return ld.Apps
	}
	return appprofile.Builtin()
}

func (e *env) appCommand() *cobra.Command {
	var asJSON bool
	app := &cobra.Command{Use: "app", Short: "Application profiles: named services rules can use"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List application profiles",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps := e.apps().List()
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(ps)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Name\tPorts\tTitle")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, portsText(p.Ports), p.Title)
			}
			return tw.Flush()
		},
	}
	info := &cobra.Command{
		Use:   "info NAME",
		Short: "Show an application profile",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, ok := e.apps().Lookup(args[0])
			if !ok {
				return fmt.Errorf("no application profile %q (see `moat app list`)", args[0])
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(p)
			}
			fmt.Fprintf(e.stdout, "Profile: %s\nTitle: %s\nDescription: %s\nSource: %s\n\nPorts:\n", p.Name, p.Title, p.Description, p.Source)
			for _, port := range p.Ports {
				fmt.Fprintf(e.stdout, "  %s\n", port)
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, info} {
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	}
	app.AddCommand(list, info)
	return app
}

func portsText(ps []appprofile.Port) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
