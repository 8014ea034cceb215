package main

// The README test: every command in README.md's sh blocks runs, in order,
// as written, against a cloud this test starts with `openvpc up`, so the
// README cannot drift from what the binary does.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is one ```sh block of the README.
type readmeBlock struct {
	line int    // of the opening fence
	mode string // "" (run), "skip" or "flags only", from the comment above it
	why  string
	cmds []readmeCmd
}

// readmeCmd is one command of a block, continuation lines joined, with
// what the README says it prints: comment lines "#  …" right under it.
// An expectation starting "openvpc:" is an error: the command must fail.
type readmeCmd struct {
	line   int
	text   string
	expect []string
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: (skip|flags only) \((.+)\) -->$`)

func parseREADME(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	prev := "" // the last non-empty line outside a block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```sh"):
			cur = &readmeBlock{line: n}
			if m := readmeMarker.FindStringSubmatch(prev); m != nil {
				cur.mode, cur.why = m[1], m[2]
			} else if strings.HasPrefix(prev, "<!-- readme-test") {
				t.Fatalf("README.md:%d: marker %q is not <!-- readme-test: skip|flags only (why) -->", n-1, prev)
			}
		case cur == nil:
			if strings.TrimSpace(l) != "" {
				prev = strings.TrimSpace(l)
			}
		case strings.HasPrefix(l, "```"):
			blocks = append(blocks, *cur)
			cur, prev = nil, ""
		case strings.HasPrefix(l, "#  ") && len(cur.cmds) > 0:
			last := &cur.cmds[len(cur.cmds)-1]
			last.expect = append(last.expect, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		case strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#"):
		default:
			if k := len(cur.cmds); k > 0 && strings.HasSuffix(cur.cmds[k-1].text, `\`) {
				cur.cmds[k-1].text += "\n" + l
				continue
			}
			cur.cmds = append(cur.cmds, readmeCmd{line: n, text: l})
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: the sh block is not closed", cur.line)
	}
	return blocks
}

// readmeSkips are the only commands the README test may skip; a new one
// needs a reason here, not just a marker there.
var readmeSkips = map[string]string{
	"make test":         "the whole suite, this test included",
	"go run ./bench":    "minutes of benchmarks",
	"make bench":        "minutes of benchmarks",
	"curl -sk https://": "metrics move to their own listener (issue 20 item 5)",
}

// theCloud is the README's command that starts the cloud the rest use:
// the test runs the same binary itself, on free ports.
const theCloud = "go run ./cmd/openvpc up"

// readmeEnv marks the README's commands: a README whose `make test` lost
// its skip marker would otherwise run this test inside itself, without end.
const readmeEnv = "OPENVPC_README_TEST"

func TestREADME(t *testing.T) {
	if os.Getenv(readmeEnv) != "" {
		t.Skip("inside the README test's own commands")
	}
	// What the README's commands need besides openvpc. Like the other tests
	// that need outside tools, this one skips without them, unless
	// OPENVPC_E2E=1 (CI) says they must be there.
	need := func(what string, ok bool) {
		if ok {
			return
		}
		if os.Getenv("OPENVPC_E2E") != "" {
			t.Fatalf("the README needs %s", what)
		}
		t.Skipf("the README needs %s", what)
	}
	for _, tool := range []string{"bash", "make", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		need(tool, err == nil)
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		ln.Close()
	} else {
		need("127.0.0.1:8080 free (its forward listens there)", false)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseREADME(t, filepath.Join(repo, "README.md"))
	var script bytes.Buffer
	var cmds []readmeCmd // run, in order; script numbers them
	sawCloud := false
	for _, b := range blocks {
		for _, c := range b.cmds {
			switch {
			case b.mode == "skip":
				if !skippable(c.text) {
					t.Errorf("README.md:%d: %q is skipped (%s), but the test skips only %v", c.line, c.text, b.why, readmeSkips)
				}
			case b.mode == "flags only":
				checkFlags(t, c)
			case c.text == theCloud:
				if len(cmds) > 0 && !sawCloud && strings.HasPrefix(cmds[len(cmds)-1].text, "./openvpc") {
					t.Errorf("README.md:%d: the cloud starts after commands that need it", c.line)
				}
				sawCloud = true
			case skippable(c.text):
				t.Errorf("README.md:%d: %q is not run by this test; mark its block <!-- readme-test: skip (why) -->", c.line, c.text)
			default:
				if strings.HasPrefix(c.text, "./openvpc") && !sawCloud {
					t.Errorf("README.md:%d: %q comes before the README starts the cloud (%s)", c.line, c.text, theCloud)
				}
				// Markers on lines of their own, whatever the command printed
				// last (curl ends without a newline).
				fmt.Fprintf(&script, "printf '\\n@@cmd %[1]d\\n'; printf '\\n@@cmd %[1]d\\n' >&2\n%[2]s\nprintf '\\n@@rc %[1]d %%d\\n' $?\n", len(cmds), c.text)
				cmds = append(cmds, c)
			}
		}
	}
	if !sawCloud || len(cmds) < 20 {
		t.Fatalf("README.md: found %d commands to run and the cloud %v; the parser or the README is wrong", len(cmds), sawCloud)
	}

	home := t.TempDir()
	config := filepath.Join(home, ".config", "openvpc", "config")
	// The cloud the README's `go run ./cmd/openvpc up` starts, on free
	// ports and a data dir of the test's own.
	up := startUp(t, "--data-dir", filepath.Join(t.TempDir(), "data"), "--admin-config", config,
		"--internet-proxy", freeAddr(t), "--wire-port", upWirePort(t))
	up.banner(t)
	// The README's commands see the cloud as a user's shell would: the
	// client config where up wrote it, ~/.config/openvpc/config.
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=", readmeEnv + "=1"}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS"} {
		out, _ := exec.Command("go", "env", k).Output()
		env = append(env, k+"="+strings.TrimSpace(string(out))) // else go run would build anew in HOME
	}
	stdout, stderr := runScript(t, repo, append(baseEnv(), env...), script.String())
	outs, errs, rcs := splitRuns(stdout, stderr)
	for i, c := range cmds {
		rc, ran := rcs[i]
		if !ran {
			t.Errorf("README.md:%d: %q did not finish; output after it:\n%s\n%s", c.line, c.text, outs[i], errs[i])
			continue
		}
		checkREADMECmd(t, c, rc, outs[i], errs[i])
	}
	t.Logf("ran the README's %d commands", len(cmds))
	if t.Failed() {
		t.Logf("openvpc up printed:\n%s", up.out)
	}
}

func skippable(cmd string) bool {
	for prefix := range readmeSkips {
		if strings.HasPrefix(cmd, prefix) {
			return true
		}
	}
	return false
}

// checkFlags checks a command the test cannot run (it needs other
// machines) at least names a command and flags that exist: cobra parses
// every flag before it prints --help.
func checkFlags(t *testing.T, c readmeCmd) {
	t.Helper()
	text, _, _ := strings.Cut(c.text, " #")
	args := strings.Fields(text)
	if len(args) == 0 || args[0] != "openvpc" {
		t.Errorf("README.md:%d: %q in a flags-only block is not an openvpc command", c.line, c.text)
		return
	}
	var words []string // the command's path, and maybe one argument (host remove HOST)
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	r := runCLI(t, nil, append(args[1:], "--help")...)
	path := words
	for len(path) > 0 && !strings.Contains(r.stdout, "Usage:\n  openvpc "+strings.Join(path, " ")+" ") {
		path = path[:len(path)-1]
	}
	if r.code != 0 || len(path) == 0 || len(words)-len(path) > 1 {
		t.Errorf("README.md:%d: %q does not parse: %s", c.line, c.text, r)
	}
}

// runScript runs script with bash in dir, in a process group of its own
// that is ended afterwards (the README backgrounds a forward).
func runScript(t *testing.T, dir string, env []string, script string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the backgrounded forward
	if ctx.Err() != nil {
		t.Errorf("the README's commands did not finish in 5 minutes (%v)", werr)
	}
	return out.String(), errb.String()
}

var runMarker = regexp.MustCompile(`(?m)^@@(cmd|rc) (\d+)(?: (\d+))?$`)

// splitRuns cuts the script's output at its markers: each command's
// stdout, stderr and exit code, by number.
func splitRuns(stdout, stderr string) (outs, errs map[int]string, rcs map[int]int) {
	outs, errs, rcs = map[int]string{}, map[int]string{}, map[int]int{}
	cut := func(s string, into map[int]string) {
		ms := runMarker.FindAllStringSubmatchIndex(s, -1)
		for i, m := range ms {
			n, _ := strconv.Atoi(s[m[4]:m[5]])
			end := len(s)
			if i+1 < len(ms) {
				end = ms[i+1][0]
			}
			if s[m[2]:m[3]] == "cmd" {
				into[n] = s[m[1]:end]
			} else if m[6] >= 0 {
				rcs[n], _ = strconv.Atoi(s[m[6]:m[7]])
			}
		}
	}
	cut(stdout, outs)
	cut(stderr, errs)
	return outs, errs, rcs
}

// checkREADMECmd checks one command did what the README says: it
// succeeded and printed the expected text, or (expectation "openvpc: …")
// failed with that message.
func checkREADMECmd(t *testing.T, c readmeCmd, rc int, stdout, stderr string) {
	t.Helper()
	where := fmt.Sprintf("README.md:%d: %s", c.line, c.text)
	wantErr := len(c.expect) > 0 && strings.HasPrefix(c.expect[0], "openvpc:")
	switch {
	case wantErr && rc == 0:
		t.Errorf("%s: the README says it fails with %q, but it exited 0:\n%s%s", where, c.expect[0], stdout, stderr)
	case !wantErr && rc != 0:
		t.Errorf("%s: exit code %d:\n%s%s", where, rc, stdout, stderr)
	}
	got := stdout
	if wantErr {
		got = stderr
	}
	for _, e := range c.expect {
		if !inOrder(got, strings.Split(e, "…")) {
			t.Errorf("%s: the README says it prints %q; it printed:\n%s", where, e, got)
		}
	}
}

// inOrder says whether s contains every piece, in order.
func inOrder(s string, pieces []string) bool {
	for _, p := range pieces {
		p = strings.TrimSpace(p)
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
