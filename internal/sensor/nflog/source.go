package nflog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gonflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/moat-sec/moat/internal/event"
)

// DefaultBufsize is the socket receive buffer a Source asks for.
const DefaultBufsize = 4 << 20

const (
	// copyRange is how many bytes of each packet the kernel copies to us:
	// enough for an IPv6 header with extension headers and a TCP header
	// with options, not the data.
	copyRange = 256
	// flushTimeout is how long (in 1/100 s) the kernel may hold logged
	// packets to batch them; its default is one second.
	flushTimeout = 10
	// maxSkew: a kernel timestamp further than this from the receive time
	// is not believed (a wrong clock source), and the receive time is used.
	maxSkew = time.Minute

	minBackoff = time.Second
	maxBackoff = time.Minute
	healthyRun = time.Minute
)

// Config is one NFLOG group to read.
type Config struct {
	Group uint16 // the group the firewall's "log group N" statements use (moat's default: 100)
	// Bufsize is the socket receive buffer in bytes; 0 means
	// DefaultBufsize. With CAP_NET_ADMIN it may exceed net.core.rmem_max.
	Bufsize uint32
	// NetNSFd, when not 0, is an open file descriptor of the network
	// namespace to read in (for example of /run/netns/NAME); 0 means the
	// caller's namespace.
	NetNSFd int
}

// Stats is a snapshot of a Source's counters and health.
type Stats struct {
	Packets uint64 // observations sent
	// Dropped counts packets the kernel logged that never reached us: the
	// socket buffer overflowed (ENOBUFS, suppressed by NETLINK_NO_ENOBUFS)
	// and the kernel discarded them. Counted from gaps in the group's
	// sequence numbers, so it is exact while the socket is bound.
	Dropped      uint64
	DecodeErrors uint64 // payloads Decode refused
	Skipped      uint64 // non-first fragments, and messages without a payload
	Overruns     uint64 // ENOBUFS errors reported (only if NETLINK_NO_ENOBUFS could not be set)
	Restarts     uint64 // binds after the first
	Following    bool   // bound to the group and receiving
	Last         time.Time
	Err          string // the last failure, empty while healthy
}

// Source reads one NFLOG group. Create it with New, then call Run once.
type Source struct {
	cfg     Config
	name    string
	running atomic.Bool

	mu    sync.Mutex
	stats Stats
}

// New checks cfg and returns a Source for it. It does no I/O: the socket is
// opened by Run.
func New(cfg Config) (*Source, error) {
	if cfg.Bufsize == 0 {
		cfg.Bufsize = DefaultBufsize
	}
	if cfg.Bufsize > 1<<30 {
		return nil, fmt.Errorf("nflog group %d: receive buffer %d bytes is over 1 GiB", cfg.Group, cfg.Bufsize)
	}
	if cfg.NetNSFd < 0 {
		return nil, fmt.Errorf("nflog group %d: bad network namespace fd %d", cfg.Group, cfg.NetNSFd)
	}
	return &Source{cfg: cfg, name: "nflog:" + strconv.Itoa(int(cfg.Group))}, nil
}

// Name is the Source of the observations: "nflog:<group>".
func (s *Source) Name() string { return s.name }

// Stats returns a snapshot of the counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Source) update(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

// Run binds the group and sends one observation per logged packet to out
// until ctx is done; then it returns nil. It never closes out, and sends
// nothing after it returns. A send blocks while out is full: the kernel
// then buffers, and past the socket buffer drops (Stats.Dropped). When the
// bind fails or the socket breaks, Run records the error in Stats.Err and
// binds again after a backoff (1 s doubling to 1 min). Only one process
// can bind a group in a namespace: another reader (ulogd) shows as an
// error here.
func (s *Source) Run(ctx context.Context, out chan<- event.Observation) error {
	if out == nil {
		return fmt.Errorf("run %s: nil channel", s.name)
	}
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run %s: already running", s.name)
	}
	backoff := minBackoff
	for runs := 0; ; runs++ {
		if runs > 0 {
			s.update(func(st *Stats) { st.Restarts++ })
		}
		start := time.Now()
		err := s.runOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("receiving stopped")
		}
		s.update(func(st *Stats) { st.Err = err.Error() })
		if time.Since(start) >= healthyRun {
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce binds the group and receives until ctx is done or the socket
// fails.
func (s *Source) runOnce(ctx context.Context, out chan<- event.Observation) error {
	nf, err := gonflog.Open(&gonflog.Config{
		Group:    s.cfg.Group,
		Copymode: gonflog.CopyPacket,
		Bufsize:  copyRange,
		Flags:    gonflog.FlagSeq,
		Timeout:  flushTimeout,
		NetNS:    s.cfg.NetNSFd,
	})
	if err != nil {
		return fmt.Errorf("open nflog socket: %w", err)
	}
	defer nf.Close()
	// A full buffer must not stop us (STACK.md §2, pitfall 1): with this
	// option the kernel drops silently, and the sequence gaps count it.
	noENOBUFS := nf.SetOption(netlink.NoENOBUFS, true) == nil
	if err := setReadBuffer(nf.Con, int(s.cfg.Bufsize)); err != nil {
		return fmt.Errorf("set nflog receive buffer to %d bytes: %w", s.cfg.Bufsize, err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// gate makes sure no hook sends once runOnce returns: go-nflog v2.3.0's
	// Close does not wait for its receive goroutine.
	var (
		gate    sync.Mutex
		stopped bool
		// Binding creates the group's instance, whose numbering starts
		// at 0: a loss before the first packet counts too.
		seq = seqTracker{seen: true}
	)
	fatal := make(chan error, 1)
	hook := func(a gonflog.Attribute) int {
		gate.Lock()
		defer gate.Unlock()
		if stopped {
			return 1
		}
		return s.handle(rctx, out, a, &seq)
	}
	errfn := func(err error) int {
		if rctx.Err() != nil {
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) {
			s.update(func(st *Stats) { st.Overruns++ })
			return 0
		}
		if oe, ok := errors.AsType[*netlink.OpError](err); ok && oe.Timeout() {
			return 0
		}
		select {
		case fatal <- fmt.Errorf("receive from nflog group %d: %w", s.cfg.Group, err):
		default:
		}
		return 1
	}
	if err := nf.RegisterWithErrorFunc(rctx, hook, errfn); err != nil {
		return fmt.Errorf("bind nflog group %d: %w", s.cfg.Group, err)
	}
	s.update(func(st *Stats) {
		st.Following, st.Err = true, ""
		if !noENOBUFS {
			st.Err = "NETLINK_NO_ENOBUFS not set: overflows are reported as errors"
		}
	})
	defer s.update(func(st *Stats) { st.Following = false })
	select {
	case <-rctx.Done():
	case err = <-fatal:
	}
	cancel()
	gate.Lock()
	stopped = true
	gate.Unlock()
	return err
}

// setReadBuffer asks for n bytes of receive buffer, past net.core.rmem_max
// when we have CAP_NET_ADMIN.
func setReadBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr error
		if err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		}); err == nil && serr == nil {
			return nil
		}
	}
	return c.SetReadBuffer(n)
}

// seqTracker counts the packets missing from the group's sequence (the
// NFULA_SEQ attribute, which the kernel numbers per group).
type seqTracker struct {
	seen bool
	next uint32
}

// lost returns how many packets are missing before seq.
func (t *seqTracker) lost(seq uint32) uint64 {
	var n uint64
	if d := seq - t.next; t.seen && d != 0 && d < 1<<31 {
		n = uint64(d)
	}
	t.seen, t.next = true, seq+1
	return n
}

// handle decodes one logged packet and sends it. It returns 1 to stop
// receiving (ctx done).
func (s *Source) handle(ctx context.Context, out chan<- event.Observation, a gonflog.Attribute, seq *seqTracker) int {
	now := time.Now()
	var lost uint64
	if a.Seq != nil {
		lost = seq.lost(*a.Seq)
	}
	if a.Payload == nil {
		s.update(func(st *Stats) { st.Dropped += lost; st.Skipped++ })
		return 0
	}
	// Decode copies what it needs: the payload aliases go-nflog's
	// receive buffer (v2.3.0) and must not be kept.
	p, err := Decode(*a.Payload)
	if err != nil {
		s.update(func(st *Stats) {
			st.Dropped += lost
			if err == ErrFragment {
				st.Skipped++
			} else {
				st.DecodeErrors++
			}
		})
		return 0
	}
	t := now
	if a.Timestamp != nil && !a.Timestamp.IsZero() {
		if d := now.Sub(*a.Timestamp); d < maxSkew && d > -maxSkew {
			t = *a.Timestamp
		}
	}
	o := event.Observation{Source: s.name, Time: t, Line: Text(p), Packet: &p}
	if a.Prefix != nil {
		o.Prefix = *a.Prefix
	}
	// Counted before the send, so that a reader that has the observation
	// sees it in Stats.
	s.update(func(st *Stats) { st.Dropped += lost; st.Packets++; st.Last = t })
	select {
	case out <- o:
		return 0
	case <-ctx.Done():
		s.update(func(st *Stats) { st.Packets-- })
		return 1
	}
}
