package cli

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/policy"
)

// editFlags are the flags of every command that changes the rules.
type editFlags struct{ force bool }

func (f *editFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.force, "force", false, "apply even if it would lock out SSH")
}

func (e *env) ruleCommand(action, short string) *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   action + " [in|out|routed] [on IFACE] PORT[/PROTO] | APP | [proto P] [from ADDR [port P]] [to ADDR [port P|app A]] [comment TEXT]",
		Short: short,
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		// Rule words like "in" and "from" are not flags.
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.addRule(append([]string{action}, args...), -1, f)
		},
	}
	f.register(cmd)
	return cmd
}

func (e *env) routeCommand() *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   "route allow|deny|reject|limit [in on IFACE] [out on IFACE] ...",
		Short: "Add a rule for forwarded traffic",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.addRule(append([]string{"route"}, args...), -1, f)
		},
	}
	f.register(cmd)
	return cmd
}

// addRule parses words into a rule and adds it to the managed file at
// managed index at (-1: the end).
func (e *env) addRule(words []string, at int, f editFlags) error {
	spec, err := policy.ParseArgs(words)
	if err != nil {
		return usageError{err}
	}
	ld, err := e.load()
	if err != nil {
		return err
	}
	if slices.Contains(ld.Managed, spec) {
		fmt.Fprintln(e.stdout, "Skipping adding existing rule")
		return nil
	}
	specs := slices.Clone(ld.Managed)
	if at < 0 || at > len(specs) {
		at = len(specs)
	}
	specs = slices.Insert(specs, at, spec)
	if err := e.editManaged(ld, specs, f); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Rule added: %s\n", spec)
	return nil
}

// editManaged writes specs as the managed rules, checks the whole policy,
// and re-applies it when the firewall is active. On any failure the file is
// put back as it was.
func (e *env) editManaged(ld *config.Loaded, specs []policy.Spec, f editFlags) error {
	old, err := config.ReadOptional(ld.RulesPath)
	if err != nil {
		return err
	}
	data, err := config.RenderRules(specs)
	if err != nil {
		return err
	}
	if err := config.WriteFile(ld.RulesPath, data); err != nil {
		return err
	}
	restore := func(cause error) error {
		var rerr error
		if old == nil {
			rerr = removeFile(ld.RulesPath)
		} else {
			rerr = config.WriteFile(ld.RulesPath, old)
		}
		return errors.Join(cause, rerr)
	}
	nld, err := e.load()
	if err != nil {
		return restore(err)
	}
	active, err := e.active()
	if err != nil {
		return restore(err)
	}
	if active {
		if _, err := e.apply(nld, applyOpts{force: f.force}); err != nil {
			return restore(err)
		}
	}
	return nil
}

func (e *env) deleteCommand() *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   "delete NUM | RULE",
		Short: "Delete a rule by its number in `moat status numbered`, or by its words",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ld, err := e.load()
			if err != nil {
				return err
			}
			idx := -1
			if n, err := strconv.Atoi(args[0]); err == nil && len(args) == 1 {
				if idx, err = e.managedIndex(ld, n); err != nil {
					return err
				}
			} else {
				spec, err := policy.ParseArgs(args)
				if err != nil {
					return usageError{err}
				}
				idx = slices.Index(ld.Managed, spec)
				if idx < 0 {
					return fmt.Errorf("no managed rule %q (see `moat status numbered`)", spec)
				}
			}
			spec := ld.Managed[idx]
			if err := e.editManaged(ld, slices.Delete(slices.Clone(ld.Managed), idx, idx+1), f); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Rule deleted: %s\n", spec)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (e *env) insertCommand() *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   "insert NUM RULE",
		Short: "Insert a rule before rule NUM",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return usagef("insert: %q is not a rule number", args[0])
			}
			ld, err := e.load()
			if err != nil {
				return err
			}
			idx := len(ld.Managed)
			if n != ld.HandWritten+len(ld.Managed)+1 {
				if idx, err = e.managedIndex(ld, n); err != nil {
					return err
				}
			}
			return e.addRule(args[1:], idx, f)
		},
	}
	f.register(cmd)
	return cmd
}

// managedIndex maps a rule number (1-based, over all rules) to an index in
// the managed rules, refusing hand-written ones.
func (e *env) managedIndex(ld *config.Loaded, n int) (int, error) {
	total := ld.HandWritten + len(ld.Managed)
	switch {
	case n < 1 || n > total:
		return 0, usagef("no rule %d (there are %d; see `moat status numbered`)", n, total)
	case n <= ld.HandWritten:
		r := ld.Policy.Rules[n-1]
		return 0, fmt.Errorf("rule %d is hand-written in %s:%d; edit that file", n, r.Origin.File, r.Origin.Line)
	}
	return n - 1 - ld.HandWritten, nil
}
