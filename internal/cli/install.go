package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-sec/moat/internal/config"
)

// Unit renders the systemd unit that restores the confirmed ruleset at boot,
// before any network interface is configured.
func Unit(exe, configPath, stateDir, runDir string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	return fmt.Sprintf(`[Unit]
Description=moat firewall: restore the confirmed nftables ruleset
Documentation=https://github.com/moat-sec/moat
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%s --config %s --state-dir %s --run-dir %s boot
# The ruleset stays in the kernel when the unit stops: stopping moat must not
# open the host. Use `+"`moat down`"+` to remove it.

[Install]
WantedBy=sysinit.target
`, q(exe), q(configPath), q(stateDir), q(runDir))
}

func (e *env) installCommand() *cobra.Command {
	var unitDir string
	var noEnable bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the systemd unit that applies the confirmed ruleset at boot",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			path := filepath.Join(unitDir, "moat.service")
			if err := config.WriteFile(path, []byte(Unit(exe, e.configPath, e.stateDir, e.runDir))); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Wrote %s\n", path)
			if noEnable {
				return nil
			}
			systemctl, err := exec.LookPath("systemctl")
			if err != nil {
				fmt.Fprintln(e.stdout, "systemctl not found; enable the unit with your init system.")
				return nil
			}
			for _, args := range [][]string{{"daemon-reload"}, {"enable", "moat.service"}} {
				out, err := exec.Command(systemctl, args...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			fmt.Fprintln(e.stdout, "Enabled moat.service: the confirmed ruleset is restored at boot.")
			return nil
		},
	}
	cmd.Flags().StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "where to write moat.service")
	cmd.Flags().BoolVar(&noEnable, "no-enable", false, "write the unit only")
	return cmd
}
