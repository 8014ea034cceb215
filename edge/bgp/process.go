package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/openvpc/openvpc/nsthread"
)

// The child protocol, one JSON object per line. The parent writes the
// Config first, then a command per line; the child writes a Status per
// change. The child ends when its stdin closes (the edge went away) or on
// SIGTERM, and it dies with its parent (Pdeathsig).
type command struct {
	Announce []netip.Prefix `json:"announce"`
}

// ServeChild is the child's side: it reads the Config from in, runs a
// Speaker, applies the commands that follow and writes every Status to
// out. The hidden `openvpc edge bgp-speaker` command is this.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := bufio.NewScanner(in)
	r.Buffer(make([]byte, 64<<10), 1<<20)
	if !r.Scan() {
		return errors.New("bgp speaker: no configuration on stdin")
	}
	var cfg Config
	if err := json.Unmarshal(r.Bytes(), &cfg); err != nil {
		return fmt.Errorf("bgp speaker: configuration: %w", err)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	sp, err := New(cfg, log, func(st Status) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(st)
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- sp.Run(ctx) }()
	go func() {
		defer cancel() // stdin closed: the parent is gone or done
		for r.Scan() {
			var c command
			if err := json.Unmarshal(r.Bytes(), &c); err != nil {
				log.Warn("bgp speaker: bad command", "err", err)
				continue
			}
			if err := sp.Announce(c.Announce); err != nil {
				log.Warn("bgp speaker: announce", "err", err)
			}
		}
	}()
	return <-errc
}

// ProcessConfig is a speaker run as a child process inside a network
// namespace.
type ProcessConfig struct {
	// Session is the BGP session.
	Session Config
	// NetNS is the path of the namespace the session lives in
	// (/run/netns/NAME); empty: the edge's own.
	NetNS string
	// Command makes the child's command line; default: this executable
	// with the hidden `edge bgp-speaker` subcommand.
	Command func() *exec.Cmd
	// Restart is the pause before a crashed child is started again
	// (default 1 s).
	Restart time.Duration
}

// Process is a Speaker in a child process, started, watched (restarted if
// it dies) and stopped by Run.
type Process struct {
	cfg      ProcessConfig
	log      *slog.Logger
	onChange func(Status)

	mu       sync.Mutex
	st       Status
	announce []netip.Prefix
	stdin    io.Writer // of the running child; nil between children
	pid      int
}

// NewProcess checks cfg; onChange (may be nil) gets every Status the child
// reports, and an Idle one when the child dies.
func NewProcess(cfg ProcessConfig, log *slog.Logger, onChange func(Status)) (*Process, error) {
	cfg.Session = cfg.Session.withDefaults()
	if err := cfg.Session.Validate(); err != nil {
		return nil, err
	}
	if cfg.Command == nil {
		cfg.Command = func() *exec.Cmd {
			exe, _ := os.Executable()
			return exec.Command(exe, "edge", "bgp-speaker")
		}
	}
	if cfg.Restart == 0 {
		cfg.Restart = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onChange == nil {
		onChange = func(Status) {}
	}
	return &Process{cfg: cfg, log: log, onChange: onChange, announce: cfg.Session.Announce,
		st: Status{State: Idle, Since: time.Now(), Advertised: cfg.Session.Announce}}, nil
}

// Status is the last status the child reported.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Learned, st.Advertised = slices.Clone(st.Learned), slices.Clone(st.Advertised)
	return st
}

// PID is the running child's process id, 0 when none runs.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Announce replaces the announced prefixes, in the running child and in
// every later one.
func (p *Process) Announce(prefixes []netip.Prefix) error {
	for _, x := range prefixes {
		if !x.IsValid() || !x.Addr().Is4() || x.Masked() != x {
			return fmt.Errorf("bgp: announce %v: give IPv4 network prefixes such as 10.0.0.0/16", x)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.announce = slices.Clone(prefixes)
	if p.stdin == nil {
		return nil
	}
	b, _ := json.Marshal(command{Announce: p.announce})
	_, err := p.stdin.Write(append(b, '\n'))
	return err
}

// Run starts the child and keeps one running until ctx ends; then it
// stops the child (SIGTERM, SIGKILL after 5 s) and returns.
func (p *Process) Run(ctx context.Context) error {
	for {
		err := p.runChild(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("bgp speaker exited; restarting", "peer", p.cfg.Session.PeerAddr, "err", err)
		p.report(Status{State: Idle, Since: time.Now(), Reason: fmt.Sprintf("the BGP speaker process exited (%v); restarting it", err)})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.cfg.Restart):
		}
	}
}

func (p *Process) report(st Status) {
	p.mu.Lock()
	if st.Advertised == nil {
		st.Advertised = slices.Clone(p.announce)
	}
	st.Flaps += p.st.Flaps // the child counts from zero
	p.st = st
	p.mu.Unlock()
	p.onChange(st)
}

func (p *Process) runChild(ctx context.Context) error {
	cmd := p.cfg.Command()
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p.mu.Lock()
	session := p.cfg.Session
	session.Announce = slices.Clone(p.announce)
	p.mu.Unlock()
	cfg, _ := json.Marshal(session)
	if err := startIn(p.cfg.NetNS, cmd); err != nil {
		return fmt.Errorf("start the BGP speaker in %s: %w", p.cfg.NetNS, err)
	}
	if _, err := stdin.Write(append(cfg, '\n')); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	p.mu.Lock()
	p.stdin, p.pid = stdin, cmd.Process.Pid
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.stdin, p.pid = nil, 0
		p.mu.Unlock()
	}()
	flaps := p.Status().Flaps
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewScanner(stdout)
		r.Buffer(make([]byte, 64<<10), 4<<20)
		for r.Scan() {
			var st Status
			if err := json.Unmarshal(r.Bytes(), &st); err != nil {
				continue
			}
			p.mu.Lock()
			st.Flaps += flaps
			p.st = st
			p.mu.Unlock()
			p.onChange(st)
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
		<-done
		t.Stop()
	})
	defer stop()
	<-done
	return cmd.Wait()
}

// startIn starts cmd from a thread inside the namespace at path, so the
// child is born there (as `ip netns exec` does, without a mount
// namespace of its own).
func startIn(path string, cmd *exec.Cmd) error {
	if path == "" {
		return cmd.Start()
	}
	return nsthread.InPath(path, cmd.Start)
}
