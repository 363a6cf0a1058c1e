package nettest

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "MOAT_TEST_NETNS_CHILD" // the test's name, set in the child

// InChild runs the calling test again, alone, in a child process in a new
// network namespace (lo up), and reports the child's outcome. It returns
// true in the child, where the test body runs, and false in the parent,
// which must return. Kernel tests use it so that they never touch the
// namespace they were started from.
func InChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		if netnsID(t) == os.Getenv(childEnv+"_PARENT") {
			t.Fatal("child runs in its parent's network namespace")
		}
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("lo up: %v: %s", err, out)
		}
		return true
	}
	RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), childEnv+"_PARENT="+netnsID(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("child in a new network namespace:\n%s", out)
	switch {
	case err != nil:
		t.Fatalf("child: %v", err)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Skip("skipped in the child")
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatal("child did not run the test")
	}
	return false
}

func netnsID(t *testing.T) string {
	t.Helper()
	id, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Output runs name with args (stdin fed from stdin) in the test's own
// namespace and returns its stdout, failing the test on error.
func Output(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
