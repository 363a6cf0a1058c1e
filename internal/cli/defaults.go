package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/policy"
)

func (e *env) defaultCommand() *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   "default allow|deny|reject incoming|outgoing|routed",
		Short: "Set the default policy of a direction",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			act, err := policy.ParseAction(args[0])
			if err != nil || act == policy.Limit {
				return usagef("default: want allow, deny or reject, not %q", args[0])
			}
			dir, err := policy.ParseDirection(args[1])
			if err != nil {
				return usageError{err}
			}
			key := map[policy.Direction]string{policy.In: "incoming", policy.Out: "outgoing", policy.Routed: "routed"}[dir]
			old, err := config.ReadOptional(e.configPath)
			if err != nil {
				return err
			}
			if old == nil {
				return fmt.Errorf("%s does not exist; run `moat init` first", e.configPath)
			}
			if err := config.SetKey(e.configPath, "defaults", key, act.String()); err != nil {
				return err
			}
			ld, err := e.load()
			if err == nil {
				var active bool
				if active, err = e.active(); err == nil && active {
					_, err = e.apply(ld, applyOpts{force: f.force})
				}
			}
			if err != nil {
				if werr := config.WriteFile(e.configPath, old); werr != nil {
					return fmt.Errorf("%w (and restoring %s failed: %v)", err, e.configPath, werr)
				}
				return err
			}
			fmt.Fprintf(e.stdout, "Default %s policy changed to '%s'\n", key, act)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (e *env) initCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter policy: incoming denied except SSH, outgoing allowed, routed denied",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if old, err := config.ReadOptional(e.configPath); err != nil {
				return err
			} else if old != nil && !force {
				return fmt.Errorf("%s exists; use --force to overwrite it", e.configPath)
			}
			if err := config.WriteFile(e.configPath, []byte(config.Starter)); err != nil {
				return err
			}
			ld, err := e.load()
			if err != nil {
				return err
			}
			ssh, err := policy.ParseArgs([]string{"limit", "ssh", "comment", "SSH, rate-limited per source"})
			if err != nil {
				return err
			}
			data, err := config.RenderRules([]policy.Spec{ssh})
			if err != nil {
				return err
			}
			if err := config.WriteFile(ld.RulesPath, data); err != nil {
				return err
			}
			if _, err := e.load(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Wrote %s and %s.\nReview it, then: moat check && moat up --confirm 2m && moat confirm\n", e.configPath, ld.RulesPath)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing policy")
	return cmd
}
