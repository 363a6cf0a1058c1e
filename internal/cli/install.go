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

// DaemonUnit renders the systemd unit of the daemon: notify-type with a
// watchdog that the daemon pings only while it is healthy.
func DaemonUnit(exe, configPath, stateDir, runDir string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	return fmt.Sprintf(`[Unit]
Description=moat daemon: bans from logs, drift repair, local API
Documentation=https://github.com/moat-sec/moat
Wants=moat-firewall.service
After=moat-firewall.service network.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=%s --config %s --state-dir %s --run-dir %s run
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
WatchdogSec=30s
# Bans live in the kernel with their own timeouts: stopping the daemon
# does not lift them.
KillMode=mixed
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
NoNewPrivileges=true
ReadWritePaths=%s %s
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_DAC_READ_SEARCH CAP_SYS_ADMIN

[Install]
WantedBy=multi-user.target
`, q(exe), q(configPath), q(stateDir), q(runDir), q(stateDir), q(runDir))
}

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
		Short: "Install the systemd units: the confirmed ruleset at boot, and the daemon",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			for name, text := range map[string]string{
				"moat-firewall.service": Unit(exe, e.configPath, e.stateDir, e.runDir),
				"moat.service":          DaemonUnit(exe, e.configPath, e.stateDir, e.runDir),
			} {
				path := filepath.Join(unitDir, name)
				if err := config.WriteFile(path, []byte(text)); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Wrote %s\n", path)
			}
			if noEnable {
				return nil
			}
			systemctl, err := exec.LookPath("systemctl")
			if err != nil {
				fmt.Fprintln(e.stdout, "systemctl not found; enable the unit with your init system.")
				return nil
			}
			for _, args := range [][]string{{"daemon-reload"}, {"enable", "moat-firewall.service", "moat.service"}} {
				out, err := exec.Command(systemctl, args...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			fmt.Fprintln(e.stdout, "Enabled moat-firewall.service (the confirmed ruleset is restored at boot) and moat.service (the daemon).")
			return nil
		},
	}
	cmd.Flags().StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "where to write moat.service")
	cmd.Flags().BoolVar(&noEnable, "no-enable", false, "write the unit only")
	return cmd
}
