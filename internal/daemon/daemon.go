package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/moat-sec/moat/internal/allowlist"
	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/confirm"
	"github.com/moat-sec/moat/internal/decide"
	"github.com/moat-sec/moat/internal/detect/authfail"
	"github.com/moat-sec/moat/internal/enforce"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/store"
)

// Options say where the daemon's files are.
type Options struct {
	ConfigPath, StateDir, RunDir string
	Logger                       *slog.Logger
	// RepairInterval is how often the kernel state is checked (and put
	// back if another tool removed it). Default 500ms.
	RepairInterval time.Duration
	// BatchInterval is how long decisions wait to be sent to the kernel
	// together. Default 5ms.
	BatchInterval time.Duration
}

// Daemon is the running ban engine.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	conn  *nft.Conn
	store *store.Store
	enf   *enforce.Enforcer
	allow *allowlist.List

	storeErr atomic.Pointer[string]
	repairs  atomic.Uint64
	traps    trapStats

	mu      sync.RWMutex // guards the fields below, swapped on reload
	cfg     *config.Loaded
	decider *decide.Decider
	pipe    *pipeline

	// The trap listeners, replaced by a reload that changes them.
	// reloadMu makes reloads (from SIGHUP and from the API) one at a time.
	reloadMu sync.Mutex
	runCtx   context.Context
	trapLns  *trapListeners

	decisions chan job
}

// job is decisions for the enforcer; done, if set, receives the outcome.
// Every kernel and store write goes through enforceLoop, one job after the
// other, so a manual unban cannot interleave with a jail's ban.
type job struct {
	ds   []event.Decision
	done chan error
}

func init() {
	// Jail filters and custom patterns are checked when the policy loads,
	// so a bad pattern is a config error with its position.
	config.CheckFilters = func(name, mode string, custom *config.Filter) error {
		if custom != nil {
			_, err := authfail.Compile(custom.Name, custom.FailRegex, custom.IgnoreRegex, custom.Prefix)
			return err
		}
		_, err := authfail.Builtin(name, mode)
		return err
	}
}

// Run starts the daemon and blocks until ctx ends or it fails to start.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.RepairInterval == 0 {
		opts.RepairInterval = 500 * time.Millisecond
	}
	if opts.BatchInterval == 0 {
		opts.BatchInterval = 5 * time.Millisecond
	}
	d := &Daemon{opts: opts, log: opts.Logger, started: time.Now(), decisions: make(chan job, 1024)}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	d.cfg = cfg

	// The kernel first: bans must be enforced before anything else runs.
	if d.conn, err = nft.Open(); err != nil {
		return err
	}
	defer d.conn.Close()
	if err := d.ensureTable(); err != nil {
		return err
	}
	d.enf = enforce.New(d.conn, cfg.Policy.Table, nil)
	d.enf.CutFlows(nft.CutFlows, func(f string, a ...any) { d.log.Warn(fmt.Sprintf(f, a...)) })

	dbPath := cfg.Daemon.Database
	if dbPath == "" {
		dbPath = filepath.Join(opts.StateDir, "moat.db")
	}
	d.store, err = store.Open(store.Options{Path: dbPath, Logf: func(f string, a ...any) { d.log.Warn(fmt.Sprintf(f, a...)) }})
	if err != nil {
		// Still enforce: the kernel sets keep every ban until it expires.
		msg := err.Error()
		d.storeErr.Store(&msg)
		d.log.Error("store unavailable; enforcing the kernel's bans without it", "err", err)
	} else {
		defer d.store.Close()
		if rec, why := d.store.Recovered(); rec {
			d.log.Error("database was corrupt and has been rebuilt; bans in the kernel are kept", "reason", why)
		}
	}

	d.allow = allowlist.New(cfg.Bans.Allowlist, d.allowSources()...)
	if err := d.allow.Refresh(); err != nil {
		d.log.Warn("allowlist refresh", "err", err)
	}
	if err := d.restore(); err != nil {
		return err
	}
	d.decider = decide.New(decidePolicy(cfg), d.allow, d.history())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { d.enforceLoop(ctx) })
	wg.Go(func() { d.maintain(ctx) })

	if err := d.syncAllow(); err != nil {
		d.log.Warn("fill the kernel's allow sets", "err", err)
	}
	traps, err := d.startTraps(ctx, cfg)
	if err != nil {
		return err
	}
	d.reloadMu.Lock()
	d.runCtx, d.trapLns = ctx, traps
	d.reloadMu.Unlock()
	if !d.traps.verifying.Load() {
		if _, err := d.syncTrapSwitch(); err != nil { // off: a previous run's switch
			d.log.Warn("turn off the kernel's udp trap switch", "err", err)
		}
	}
	pipe, err := d.newPipeline(cfg)
	if err != nil {
		return err
	}
	d.pipe = pipe
	pipe.start(ctx)

	sock := cfg.Daemon.Socket
	if sock == "" {
		sock = filepath.Join(opts.RunDir, "moat.sock")
	}
	apiErr := make(chan error, 1)
	go func() { apiErr <- api.Serve(ctx, sock, api.Handler(d)) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
	d.log.Info("moat daemon running", "config", opts.ConfigPath, "jails", len(cfg.Jails), "bans", len(d.enf.Live()), "socket", sock)
	watchdog := watchdogTicker()
	for {
		select {
		case <-ctx.Done():
			sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
			d.currentPipe().stop()
			cancel()
			d.reloadMu.Lock()
			d.trapLns.stop()
			d.reloadMu.Unlock()
			wg.Wait()
			// Trap datagrams go back to being dropped, not sent to a
			// closed port (whose ICMP errors would go to forged sources).
			d.traps.verifying.Store(false)
			if _, err := d.syncTrapSwitch(); err != nil {
				d.log.Warn("turn off the kernel's udp trap switch", "err", err)
			}
			return nil
		case err := <-apiErr:
			if err != nil {
				return err
			}
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload refused; the old configuration keeps running", "err", err)
			}
		case <-watchdog:
			if d.Status().Healthy {
				sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			}
		}
	}
}

// watchdogTicker ticks at half systemd's watchdog interval (never, without one).
func watchdogTicker() <-chan time.Time {
	iv, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || iv <= 0 {
		return nil
	}
	return time.NewTicker(iv / 2).C
}

func (d *Daemon) currentPipe() *pipeline {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.pipe
}

// ensureTable makes sure the ban sets exist: the confirmed firewall if there
// is one, else a table with only the ban sets and their rules.
func (d *Daemon) ensureTable() error {
	table := d.cfg.Policy.Table
	present := true
	for _, s := range firewall.BanSets(table) {
		ok, err := d.conn.HasSet(s)
		if err != nil {
			return err
		}
		present = present && ok
	}
	if present {
		return nil
	}
	st := &confirm.Store{StateDir: d.opts.StateDir, RunDir: d.opts.RunDir}
	tbl, err := st.Applied()
	if err != nil || tbl == nil || tbl.Name != table {
		if err != nil {
			d.log.Warn("confirmed ruleset unreadable; installing the ban table only", "err", err)
		}
		tbl = firewall.CompileBans(table, d.cfg.Policy.Priority)
	}
	if err := d.conn.Replace(tbl); err != nil {
		return fmt.Errorf("install table %s: %w", table, err)
	}
	return nil
}

// restore puts the store's active bans into the kernel, minus allowlisted
// ones. When the store had to be rebuilt, the kernel is the record: its bans
// are adopted into the new store first.
func (d *Daemon) restore() error {
	if d.store == nil {
		return nil
	}
	if rec, _ := d.store.Recovered(); rec {
		n, err := d.adoptKernelBans()
		if err != nil {
			d.log.Error("rebuild the store from the kernel's bans", "err", err)
		} else {
			d.log.Warn("store rebuilt from the kernel's ban sets", "bans", n)
		}
	}
	// Prefixes and expiries only: decoding every ban's evidence took
	// longer than the kernel takes to load a million bans.
	bans, err := d.store.ActiveBanExpiries(time.Now())
	if err != nil {
		d.log.Error("read bans from the store", "err", err)
		return nil
	}
	eb := make([]enforce.Ban, 0, len(bans))
	for _, b := range bans {
		if d.allow.Overlaps(b.Prefix) {
			d.store.RemoveBan(b.Prefix)
			continue
		}
		eb = append(eb, enforce.Ban{Prefix: b.Prefix, Expires: b.Expires})
	}
	if err := d.enf.Restore(eb); err != nil {
		return fmt.Errorf("restore bans: %w", err)
	}
	if len(eb) >= 100000 {
		// Reading and loading this many bans leaves hundreds of MiB of
		// garbage: give it back now (a million bans: 450 -> 235 MiB RSS).
		debug.FreeOSMemory()
	}
	return nil
}

// adoptKernelBans records the bans the kernel holds in the store, with the
// time they have left.
func (d *Daemon) adoptKernelBans() (int, error) {
	now := time.Now()
	var ds []event.Decision
	for _, s := range firewall.BanSets(d.cfg.Policy.Table) {
		els, err := d.conn.Elements(s)
		if err != nil {
			return 0, err
		}
		for _, el := range els {
			dec := event.Decision{Op: event.Ban, Prefix: el.Prefix, Time: now, Jail: "recovered", Reason: "recovered from the kernel after the database was rebuilt", Offence: 1}
			if el.Timeout > 0 || el.Expires > 0 {
				dec.Duration, dec.Expires = el.Expires, now.Add(el.Expires)
			}
			ds = append(ds, dec)
		}
	}
	return len(ds), d.store.AddBans(ds)
}

func (d *Daemon) allowSources() []allowlist.Source {
	srcs := []allowlist.Source{&allowlist.OwnAddresses{}, &allowlist.SSHPeers{Ports: d.cfg.Policy.SSHPorts}, &allowlist.Resolvers{}, &allowlist.Gateways{}}
	if d.store != nil {
		srcs = append(srcs, runtimeAllow{d.store})
	}
	return srcs
}

// runtimeAllow is the allowlist added with `moat allowlist add`.
type runtimeAllow struct{ s *store.Store }

func (r runtimeAllow) Prefixes() ([]netip.Prefix, error) {
	es, err := r.s.Allowlist()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, len(es))
	for i, e := range es {
		out[i] = e.Prefix
	}
	return out, nil
}

type storeHistory struct{ s *store.Store }

func (h storeHistory) Offences(p netip.Prefix, since time.Time) (int, error) {
	if h.s == nil {
		return 0, nil
	}
	return h.s.Offences(p, since)
}

func (d *Daemon) history() decide.History { return storeHistory{d.store} }

func decidePolicy(cfg *config.Loaded) decide.Policy {
	b := cfg.Bans
	p := decide.Policy{
		BanTime: b.BanTime, Multiplier: b.Multiplier, MaxBanTime: b.MaxBanTime, Decay: b.ForgetAfter,
		PermanentAfter: b.PermanentAfter, IPv6Prefix: b.IPv6Prefix,
		AggregateV4: decide.Aggregate{Count: b.AggregateV4.Count, Bits: b.AggregateV4.Bits, Within: b.FindTime * 6},
		AggregateV6: decide.Aggregate{Count: b.AggregateV6.Count, Bits: b.AggregateV6.Bits, Within: b.FindTime * 6},
		Jails:       map[string]decide.JailPolicy{},
	}
	for _, j := range cfg.Jails {
		p.Jails[j.Name] = decide.JailPolicy{BanTime: j.BanTime}
	}
	p.Jails["honeypot"] = decide.JailPolicy{BanTime: cfg.Policy.Honeypot.BanTime}
	p.Jails["portscan"] = decide.JailPolicy{BanTime: cfg.Scan.BanTime}
	p.Budget = decide.Budget{PerMinute: cfg.Scan.Budget}
	return p
}

// submit queues decisions for the kernel and the store.
func (d *Daemon) submit(ds []event.Decision) {
	if len(ds) > 0 {
		d.decisions <- job{ds: ds}
	}
}

// applyNow enforces and records decisions and waits until both are done
// (the CLI reports success only once the kernel has the change).
func (d *Daemon) applyNow(ds []event.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	done := make(chan error, 1)
	d.decisions <- job{ds: ds, done: done}
	return <-done
}

// enforceLoop batches decisions: the first one waits at most BatchInterval
// for others, then all go to the kernel in one transaction per set, and to
// the store in one database transaction.
func (d *Daemon) enforceLoop(ctx context.Context) {
	for {
		var jobs []job
		n := 0
		select {
		case <-ctx.Done():
			return
		case j := <-d.decisions:
			jobs, n = append(jobs, j), len(j.ds)
		}
		timer := time.NewTimer(d.opts.BatchInterval)
	gather:
		for n < 10000 {
			select {
			case j := <-d.decisions:
				jobs, n = append(jobs, j), n+len(j.ds)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		batch := make([]event.Decision, 0, n)
		for _, j := range jobs {
			batch = append(batch, j.ds...)
		}
		err := d.enf.Apply(batch)
		if err != nil {
			d.log.Error("enforce", "err", err)
		}
		for _, dec := range batch {
			if dec.Op == event.Ban {
				exp := "never"
				if !dec.Permanent() {
					exp = dec.Expires.Format(time.RFC3339)
				}
				// recidive reads these lines: keep the format stable.
				d.log.Info(fmt.Sprintf("ban %s jail=%s offence=%d expires=%s", dec.Prefix, dec.Jail, dec.Offence, exp), "reason", dec.Reason)
			}
		}
		if d.store != nil {
			if serr := d.store.AddBans(batch); serr != nil {
				msg := serr.Error()
				d.storeErr.Store(&msg)
				d.log.Error("record bans", "err", serr)
				err = errors.Join(err, serr)
			}
		}
		for _, j := range jobs {
			if j.done != nil {
				j.done <- err
			}
		}
	}
}

// maintain repairs the kernel state when another tool removed it, refreshes
// the allowlist and forgets expired bans.
func (d *Daemon) maintain(ctx context.Context) {
	repair := time.NewTicker(d.opts.RepairInterval)
	defer repair.Stop()
	slow := time.NewTicker(30 * time.Second)
	defer slow.Stop()
	allow := time.NewTicker(2 * time.Second)
	defer allow.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-repair.C:
			ok, err := d.enf.Present()
			if err != nil || ok {
				continue
			}
			d.log.Warn("moat's table or ban sets are gone (another tool flushed them?); putting them back")
			if err := d.ensureTable(); err != nil {
				d.log.Error("repair table", "err", err)
				continue
			}
			if err := d.enf.Reassert(); err != nil {
				d.log.Error("repair bans", "err", err)
				continue
			}
			d.repairs.Add(1)
		case <-allow.C:
			// Cheap (a few elements), and it puts the dynamic entries back
			// after `moat up` rebuilt the table from the policy.
			if err := d.syncAllow(); err != nil {
				d.log.Warn("fill the kernel's allow sets", "err", err)
			}
			if d.traps.verifying.Load() {
				if _, err := d.syncTrapSwitch(); err != nil {
					d.log.Warn("refresh the kernel's udp trap switch", "err", err)
				}
			}
		case <-slow.C:
			if err := d.allow.Refresh(); err != nil {
				d.log.Warn("allowlist refresh", "err", err)
			}
			d.enf.Forget()
			if d.store != nil {
				d.store.PurgeExpired(time.Now())
			}
		}
	}
}

// Reload builds the new configuration completely before swapping it in; a
// broken one changes nothing.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		return api.RefusedError{Err: err}
	}
	if cfg.Policy.Table != d.cfg.Policy.Table {
		return api.RefusedError{Err: errors.New("the table name changed: restart the daemon")}
	}
	pipe, err := d.newPipeline(cfg)
	if err != nil {
		return api.RefusedError{Err: err}
	}
	if err := d.reloadTraps(cfg); err != nil {
		return api.RefusedError{Err: err}
	}
	ctx := context.Background()
	d.mu.Lock()
	old := d.pipe
	d.cfg, d.pipe = cfg, pipe
	d.decider = decide.New(decidePolicy(cfg), d.allow, d.history())
	d.mu.Unlock()
	old.stop()
	pipe.start(ctx)
	d.allow.SetStatic(cfg.Bans.Allowlist)
	d.log.Info("configuration reloaded", "jails", len(cfg.Jails))
	return nil
}

// decideScan decides on an unverified (packet-level) finding: the decider
// applies the allowlist and the ban budget; on top, a source with an
// established connection to this host is a peer, not a scanner whose
// probes we believe, and is never banned on packet evidence.
func (d *Daemon) decideScan(f event.Finding) ([]event.Decision, decide.Outcome) {
	if hasEstablished(f.Addr) {
		return nil, decide.Outcome{Allowlisted: true, Why: f.Addr.String() + " has an established connection to this host"}
	}
	d.mu.RLock()
	dc := d.decider
	d.mu.RUnlock()
	ds, out := dc.Decide(f)
	d.submit(ds)
	return ds, out
}

func (d *Daemon) decide(f event.Finding) {
	d.mu.RLock()
	dc := d.decider
	d.mu.RUnlock()
	ds, out := dc.Decide(f)
	if out.Allowlisted {
		d.log.Info("not banning an allowlisted address", "addr", f.Addr, "jail", f.Jail, "why", out.Why)
	}
	d.submit(ds)
}

func sortedNames[T any](m map[string]T) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// reloadTraps restarts the trap listeners when cfg changes them. If a new
// port cannot be had, the old listeners come back and the reload is
// refused.
func (d *Daemon) reloadTraps(cfg *config.Loaded) error {
	if d.runCtx == nil || !trapsChanged(d.currentCfg(), cfg) {
		return nil
	}
	d.trapLns.stop()
	d.traps.verifying.Store(false)
	lns, err := d.startTraps(d.runCtx, cfg)
	if err != nil {
		old, oerr := d.startTraps(d.runCtx, d.currentCfg())
		if oerr != nil {
			d.log.Error("the old trap listeners could not come back", "err", oerr)
		}
		d.trapLns = old
		if _, serr := d.syncTrapSwitch(); serr != nil {
			d.log.Warn("set the kernel's udp trap switch", "err", serr)
		}
		return err
	}
	d.trapLns = lns
	if _, err := d.syncTrapSwitch(); err != nil {
		d.log.Warn("set the kernel's udp trap switch", "err", err)
	}
	return nil
}
