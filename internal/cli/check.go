package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/policy"
)

func (e *env) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate and lint the policy; change nothing",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ld, err := e.load()
			if err != nil {
				return err
			}
			if _, err := firewall.Compile(ld.Policy); err != nil {
				return err
			}
			fs := policy.Lint(ld.Policy)
			if ld.Scan.Detect && ld.Policy.Logging.Group == 0 {
				fs = append(fs, policy.Finding{Rule: -1, Severity: policy.SeverityWarning, Code: "scan-blind",
					Msg: "[scan] detect is on, but [logging] nflog_group is 0: dropped packets reach no NFLOG group and the scan detector will see nothing"})
			}
			if ld.Scan.Detect && ld.Policy.Incoming == policy.Allow {
				fs = append(fs, policy.Finding{Rule: -1, Severity: policy.SeverityWarning, Code: "scan-blind",
					Msg: "[scan] detect is on, but incoming traffic is allowed by default: probes are not dropped, so the scan detector sees only what the guards drop"})
			}
			for _, f := range fs {
				where := ""
				if f.Rule >= 0 && f.Rule < len(ld.Policy.Rules) {
					o := ld.Policy.Rules[f.Rule].Origin
					where = fmt.Sprintf("%s:%d: ", o.File, o.Line)
				}
				fmt.Fprintf(e.stdout, "%s%s: %s [%s]\n", where, f.Severity, f.Msg, f.Code)
			}
			fmt.Fprintf(e.stdout, "%s: policy OK (%d rules, %d findings)\n", e.configPath, len(ld.Policy.Rules), len(fs))
			return nil
		},
	}
}

func (e *env) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the nftables ruleset the policy compiles to (input for nft -f)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ld, err := e.load()
			if err != nil {
				return err
			}
			tbl, err := firewall.Compile(ld.Policy)
			if err != nil {
				return err
			}
			fmt.Fprint(e.stdout, tbl.Text())
			return nil
		},
	}
}
