package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/lockout"
)

// Exit codes. Scripts can tell a broken policy from a refused one.
const (
	ExitOK      = 0
	ExitError   = 1 // the operation failed
	ExitUsage   = 2 // bad command line
	ExitConfig  = 3 // the policy has errors; nothing was changed
	ExitRefused = 4 // the lockout guard refused the policy; nothing was changed
)

// usageError marks command-line mistakes.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// env holds what every command needs: where things are, and where output goes.
type env struct {
	configPath string
	stateDir   string
	runDir     string
	procNet    string
	getenv     func(string) string
	stdout     io.Writer
	stderr     io.Writer
}

// Main runs the moat command line with args (without the program name) and
// returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{getenv: os.Getenv, stdout: stdout, stderr: stderr, procNet: "/proc/net"}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "moat:", err)
	var ce config.Errors
	var le *lockout.Error
	var ue usageError
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == 409:
		return ExitRefused
	case errors.As(err, &ce):
		return ExitConfig
	case errors.As(err, &le):
		return ExitRefused
	case errors.As(err, &ue):
		return ExitUsage
	}
	return ExitError
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "moat",
		Short:         "moat secures a Linux server: a default-deny nftables firewall with a UFW-style command line",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&e.configPath, "config", envOr(e.getenv, "MOAT_CONFIG", config.DefaultPath), "policy file (env MOAT_CONFIG)")
	pf.StringVar(&e.stateDir, "state-dir", envOr(e.getenv, "MOAT_STATE_DIR", "/var/lib/moat"), "state directory (env MOAT_STATE_DIR)")
	pf.StringVar(&e.runDir, "run-dir", envOr(e.getenv, "MOAT_RUN_DIR", "/run/moat"), "runtime directory (env MOAT_RUN_DIR)")
	root.AddCommand(
		e.initCommand(),
		e.defaultCommand(),
		e.ruleCommand("allow", "Allow traffic"),
		e.ruleCommand("deny", "Drop traffic silently"),
		e.ruleCommand("reject", "Refuse traffic (TCP reset or ICMP unreachable)"),
		e.ruleCommand("limit", "Allow, but rate-limit new connections per source"),
		e.routeCommand(),
		e.deleteCommand(),
		e.insertCommand(),
		e.appCommand(),
		e.statusCommand(),
		e.checkCommand(),
		e.showCommand(),
		e.upCommand(),
		e.confirmCommand(),
		e.downCommand(),
		e.installCommand(),
		e.bootCommand(),
		e.runCommand(),
		e.banCommand(),
		e.unbanCommand(),
		e.bansCommand(),
		e.jailsCommand(),
		e.allowlistCommand(),
		e.reloadCommand(),
		e.testFilterCommand(),
		e.replayCommand(),
		e.scansCommand(),
		e.rollbackTimerCommand(),
	)
	return root
}

// usageArgs wraps cobra's argument validators so their errors count as usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
