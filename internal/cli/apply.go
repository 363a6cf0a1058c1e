package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/confirm"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/lockout"
	"github.com/moat-sec/moat/internal/nft"
)

func (e *env) store() *confirm.Store {
	return &confirm.Store{StateDir: e.stateDir, RunDir: e.runDir}
}

// withKernel runs fn holding the lock that serialises every change of
// state, with a connection to the kernel's nftables.
func (e *env) withKernel(fn func(st *confirm.Store, conn *nft.Conn) error) error {
	st := e.store()
	unlock, err := st.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	conn, err := nft.Open()
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(st, conn)
}

// load reads and validates the policy; any error is a config.Errors.
func (e *env) load() (*config.Loaded, error) {
	return config.Load(e.configPath)
}

type applyOpts struct {
	confirm time.Duration // 0: apply and keep
	force   bool          // skip the lockout guard
}

// apply compiles the loaded policy and puts it into the kernel in one
// transaction, after the lockout guard. With a confirm wait it first starts
// the rollback timer.
func (e *env) apply(ld *config.Loaded, o applyOpts) (*nft.Table, error) {
	tbl, err := firewall.Compile(ld.Policy)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	if !o.force {
		sessions, err := lockout.Sessions(e.getenv, e.procNet, ld.Policy.SSHPorts)
		if err != nil {
			return nil, err
		}
		if err := lockout.Check(ld.Policy, sessions); err != nil {
			return nil, err
		}
	}
	if err := e.withKernel(func(st *confirm.Store, conn *nft.Conn) error {
		return e.replaceWith(st, conn, tbl, o)
	}); err != nil {
		return nil, err
	}
	return tbl, nil
}

// replaceWith puts tbl into the kernel, with the rollback timer first when
// asked, and records it.
func (e *env) replaceWith(st *confirm.Store, conn *nft.Conn, tbl *nft.Table, o applyOpts) error {
	if o.confirm > 0 {
		prev, err := e.liveApplied(st, conn)
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable for the rollback timer: %w", err)
		}
		args := []string{"--config", e.configPath, "--state-dir", e.stateDir, "--run-dir", e.runDir, "rollback-timer"}
		p, err := st.Begin(prev, tbl, o.confirm, exe, args)
		if err != nil {
			return err
		}
		if err := e.replace(conn, prev, tbl); err != nil {
			// The transaction failed as a whole: the kernel still has prev.
			st.Cancel()
			return err
		}
		fmt.Fprintf(e.stdout, "Firewall applied; it rolls back at %s unless you run `moat confirm`.\n", p.Deadline.Format(time.TimeOnly))
		return nil
	}
	if err := st.Cancel(); err != nil {
		return err
	}
	// Without a rollback timer only the old table's name matters (a
	// renamed table must go), so the old ruleset is not decoded.
	name, err := st.AppliedName()
	if err != nil {
		return err
	}
	// Encode the record of the new ruleset while the kernel applies it.
	type encoded struct {
		data []byte
		err  error
	}
	enc := make(chan encoded, 1)
	go func() {
		data, err := confirm.EncodeApplied(tbl)
		enc <- encoded{data, err}
	}()
	if err := conn.Replace(tbl); err != nil {
		return err
	}
	if name != "" && name != tbl.Name {
		if err := conn.Delete(name); err != nil {
			return err
		}
	}
	rec := <-enc
	if rec.err != nil {
		return rec.err
	}
	if err := st.SetAppliedEncoded(tbl.Name, rec.data); err != nil {
		return err
	}
	return nil
}

// liveApplied returns the confirmed ruleset if it is in the kernel, else nil.
func (e *env) liveApplied(st *confirm.Store, conn *nft.Conn) (*nft.Table, error) {
	prev, err := st.Applied()
	if err != nil || prev == nil {
		return nil, err
	}
	ok, err := conn.Exists(prev.Name)
	if err != nil || !ok {
		return nil, err
	}
	return prev, nil
}

// replace swaps prev for next; if the table was renamed, the old one goes.
func (e *env) replace(conn *nft.Conn, prev, next *nft.Table) error {
	if err := conn.Replace(next); err != nil {
		return err
	}
	if prev != nil && prev.Name != next.Name {
		return conn.Delete(prev.Name)
	}
	return nil
}

// active reports whether moat's firewall is enabled (a confirmed ruleset
// exists) or waiting for confirmation.
func (e *env) active() (bool, error) {
	st := e.store()
	a, err := st.Applied()
	if err != nil {
		return false, err
	}
	p, err := st.Pending()
	if err != nil {
		return false, err
	}
	return a != nil || p != nil, nil
}

func (e *env) upCommand() *cobra.Command {
	var o applyOpts
	cmd := &cobra.Command{
		Use:     "up",
		Aliases: []string{"enable"},
		Short:   "Apply the policy to the kernel (atomically), and at every boot",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ld, err := e.load()
			if err != nil {
				return err
			}
			if _, err := e.apply(ld, o); err != nil {
				return err
			}
			if o.confirm == 0 {
				fmt.Fprintln(e.stdout, "Firewall is active and enabled at boot.")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&o.confirm, "confirm", 0, "roll back unless `moat confirm` runs within this time (e.g. 2m)")
	cmd.Flags().BoolVar(&o.force, "force", false, "apply even if it would lock out SSH")
	return cmd
}

func (e *env) confirmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the ruleset applied with `moat up --confirm`",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st := e.store()
			unlock, err := st.Lock()
			if err != nil {
				return err
			}
			defer unlock()
			if _, err := st.Confirm(); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "Confirmed: the firewall stays as applied.")
			return nil
		},
	}
}

func (e *env) downCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "down",
		Aliases: []string{"disable"},
		Short:   "Remove moat's table from the kernel and stop applying it at boot",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := e.withKernel(func(st *confirm.Store, conn *nft.Conn) error {
				name, err := st.AppliedName()
				if err != nil {
					return err
				}
				if name == "" {
					name = "moat"
					if ld, err := e.load(); err == nil {
						name = ld.Policy.Table
					}
				}
				if err := st.Cancel(); err != nil {
					return err
				}
				if err := conn.Delete(name); err != nil {
					return err
				}
				return st.SetApplied(nil)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "Firewall stopped and disabled at boot.")
			return nil
		},
	}
}

// bootCommand restores the confirmed ruleset; the systemd unit runs it
// before the network comes up.
func (e *env) bootCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "boot",
		Short:  "Restore the confirmed ruleset (run by the systemd unit at boot)",
		Hidden: true,
		Args:   usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var tbl *nft.Table
			err := e.withKernel(func(st *confirm.Store, conn *nft.Conn) error {
				// A pending apply did not survive the reboot: its timer is
				// gone, and the confirmed ruleset is what we restore.
				if err := st.Cancel(); err != nil {
					return err
				}
				var err error
				if tbl, err = st.Applied(); err != nil || tbl == nil {
					return err
				}
				return conn.Replace(tbl)
			})
			if err != nil {
				return err
			}
			if tbl == nil {
				fmt.Fprintln(e.stdout, "moat is disabled; nothing to restore.")
				return nil
			}
			fmt.Fprintf(e.stdout, "Restored table inet %s.\n", tbl.Name)
			return nil
		},
	}
}

func (e *env) rollbackTimerCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "rollback-timer TOKEN",
		Short:  "Roll back an unconfirmed apply at its deadline (started by `moat up --confirm`)",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := nft.Open()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx := cmd.Context()
			sleep := func(d time.Duration) bool {
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
					return true
				case <-ctx.Done():
					return false
				}
			}
			_, err = e.store().RunTimer(args[0], conn, sleep)
			return err
		},
	}
}
