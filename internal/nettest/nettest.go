package nettest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RequireRoot skips a test that needs root and the kernel, except under CI
// (CI=true), where a skipped kernel test would hide a failure: there it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: kernel tests must run)")
	}
	t.Skip(msg)
}

// RequireTools is RequireRoot for the external programs a test drives.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: end-to-end tests must run)")
	}
	t.Skip(msg)
}

var seq atomic.Int32

// NS is a network namespace made for one test and deleted after it.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace with lo up. Its name starts with prefix and is
// unique to this process; cleanup kills what runs in it and deletes it.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, seq.Add(1))
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	n := &NS{Name: name, t: t}
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	n.MustRun("ip", "link", "set", "lo", "up")
	return n
}

// Link connects a and b with a veth pair named ifA (in a) and ifB (in b),
// and gives each end its addresses (CIDR notation, IPv6 without DAD).
func Link(t testing.TB, a *NS, ifA string, addrsA []string, b *NS, ifB string, addrsB []string) {
	t.Helper()
	tmpA := fmt.Sprintf("vt%d%da", os.Getpid()%10000, seq.Add(1))
	tmpB := tmpA[:len(tmpA)-1] + "b"
	mustRun(t, "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	mustRun(t, "ip", "link", "set", tmpA, "netns", a.Name, "name", ifA)
	mustRun(t, "ip", "link", "set", tmpB, "netns", b.Name, "name", ifB)
	for _, side := range []struct {
		ns    *NS
		iface string
		addrs []string
	}{{a, ifA, addrsA}, {b, ifB, addrsB}} {
		for _, addr := range side.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", side.iface}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.ns.MustRun(args...)
		}
		side.ns.MustRun("ip", "link", "set", side.iface, "up")
	}
}

// Cmd returns a command that runs args inside the namespace.
func (n *NS) Cmd(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// CmdContext is Cmd with a context.
func (n *NS) CmdContext(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Run runs args inside the namespace and returns combined output.
func (n *NS) Run(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := n.Cmd(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(args ...string) string {
	n.t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		n.t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Start runs args inside the namespace in the background until the test
// ends. Output goes to the test log on failure.
func (n *NS) Start(args ...string) *exec.Cmd {
	n.t.Helper()
	cmd := n.Cmd(args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that forked children (socat's per
	// connection) go too; and a bounded Wait, since a child that still
	// holds the output pipe would block it forever.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("in %s: start %s: %v", n.Name, strings.Join(args, " "), err)
	}
	n.t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if n.t.Failed() {
			n.t.Logf("output of %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
	return cmd
}

// WaitListen waits until something listens on TCP port in the namespace.
func (n *NS) WaitListen(port int) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := n.Run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("in %s: nothing listens on port %d", n.Name, port)
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
