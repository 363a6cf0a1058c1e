package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-sec/moat/internal/detect/portscan"
	"github.com/moat-sec/moat/internal/lru"
	"github.com/moat-sec/moat/internal/sensor/nflog"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/detect/authfail"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/journal"
	"github.com/moat-sec/moat/internal/sensor/logtail"
	"github.com/moat-sec/moat/internal/store"
)

// maxLine bounds every log line read (attackers write into these logs).
const maxLine = 16 << 10

// source is a running log source.
type source interface {
	Run(ctx context.Context, out chan<- event.Observation) error
}

type sourceRun struct {
	id     string
	src    source
	status func() api.SourceStatus
}

type jailRun struct {
	cfg     config.Jail
	jail    *authfail.Jail
	sources []string
	bans    atomic.Uint64
}

// pipeline is one configuration's sources and jails. A reload builds a new
// one and stops the old.
type pipeline struct {
	d       *Daemon
	sources []*sourceRun
	jails   []*jailRun
	scans   *portscan.Detector // nil: scan detection off
	actions *lru.Map[netip.Addr, string]
	obs     chan event.Observation // closed by nobody: sources stop on ctx
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (d *Daemon) newPipeline(cfg *config.Loaded) (*pipeline, error) {
	p := &pipeline{d: d, obs: make(chan event.Observation, 4096), actions: lru.New[netip.Addr, string](10000)}
	if cfg.Scan.Detect && cfg.Policy.Logging.Group != 0 {
		src, err := nflog.New(nflog.Config{Group: cfg.Policy.Logging.Group})
		if err != nil {
			return nil, fmt.Errorf("scan detection: %w", err)
		}
		id := src.Name()
		sr := &sourceRun{id: id, src: src}
		sr.status = func() api.SourceStatus {
			st := src.Stats()
			return api.SourceStatus{ID: id, Following: st.Following, Lines: st.Packets, Truncated: st.Dropped, LastLine: st.Last, Error: st.Err}
		}
		p.sources = append(p.sources, sr)
		p.scans = portscan.New(portscan.Config{Window: cfg.Scan.Window, AutoBlock: cfg.Scan.AutoBlock})
	}
	custom := map[string]config.Filter{}
	for _, f := range cfg.Filters {
		custom[f.Name] = f
	}
	files := map[string]*sourceRun{}
	for _, jc := range cfg.Jails {
		var flt *authfail.Filter
		var err error
		if cf, ok := custom[jc.Filter]; ok {
			flt, err = authfail.Compile(cf.Name, cf.FailRegex, cf.IgnoreRegex, cf.Prefix)
		} else {
			flt, err = authfail.Builtin(jc.Filter, jc.Mode)
		}
		if err != nil {
			return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
		}
		jr := &jailRun{cfg: jc}
		for _, path := range jc.LogPaths {
			id := "file:" + path
			if files[id] == nil {
				t, err := logtail.New(logtail.Config{Path: path, MaxLine: maxLine, Offsets: offsetStore{d}})
				if err != nil {
					return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
				}
				sr := &sourceRun{id: id, src: t}
				sr.status = func() api.SourceStatus {
					st := t.Stats()
					return api.SourceStatus{ID: id, Following: st.Following, Lines: st.Lines, Truncated: st.Truncated, LastLine: st.LastLine, Error: st.Err}
				}
				files[id] = sr
				p.sources = append(p.sources, sr)
			}
			jr.sources = append(jr.sources, id)
		}
		if len(jc.Units) > 0 {
			id := "journal:" + strings.Join(jc.Units, ",")
			j, err := journal.New(journal.Config{Units: jc.Units, MaxLine: maxLine, Cursors: cursorStore{d}})
			if err != nil {
				return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
			}
			sr := &sourceRun{id: id, src: j}
			sr.status = func() api.SourceStatus {
				st := j.Stats()
				return api.SourceStatus{ID: id, Following: st.Following, Lines: st.Lines, Truncated: st.Truncated, LastLine: st.LastLine, Error: st.Err}
			}
			p.sources = append(p.sources, sr)
			jr.sources = append(jr.sources, id)
		}
		jr.jail, err = authfail.NewJail(authfail.JailConfig{
			Name: jc.Name, Filter: jc.Filter, Mode: jc.Mode, MaxRetry: jc.MaxRetry, FindTime: jc.FindTime,
			BanTime: jc.BanTime, IPv6Prefix: cfg.Bans.IPv6Prefix, Sources: jr.sources, RequireUnits: jc.Units,
		}, flt)
		if err != nil {
			return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
		}
		p.jails = append(p.jails, jr)
	}
	return p, nil
}

func (p *pipeline) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	p.cancel = cancel
	for _, s := range p.sources {
		p.wg.Go(func() {
			for ctx.Err() == nil {
				err := s.src.Run(ctx, p.obs)
				if ctx.Err() != nil {
					return
				}
				p.d.log.Error("source stopped; restarting", "source", s.id, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	p.wg.Go(func() { p.dispatch(ctx) })
}

func (p *pipeline) stop() {
	if p == nil || p.cancel == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// dispatch hands each observation to the jails that read its source.
func (p *pipeline) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-p.obs:
			if o.Packet != nil {
				p.packet(o)
				continue
			}
			// Each jail filters by its own sources (JailConfig.Sources).
			for _, j := range p.jails {
				if f := j.jail.Observe(o); f != nil {
					j.bans.Add(1)
					p.d.decide(*f)
				}
			}
		}
	}
}

type offsetStore struct{ d *Daemon }

func (o offsetStore) LoadOffset(path string) (logtail.Offset, bool, error) {
	if o.d.store == nil {
		return logtail.Offset{}, false, nil
	}
	off, ok, err := o.d.store.LoadOffset(path)
	return logtail.Offset{Dev: off.Dev, Ino: off.Ino, Pos: off.Pos, Size: off.Size}, ok, err
}

func (o offsetStore) SaveOffset(path string, off logtail.Offset) error {
	if o.d.store == nil {
		return nil
	}
	return o.d.store.SaveOffset(path, store.Offset{Dev: off.Dev, Ino: off.Ino, Pos: off.Pos, Size: off.Size})
}

type cursorStore struct{ d *Daemon }

func (c cursorStore) LoadCursor(key string) (string, bool, error) {
	if c.d.store == nil {
		return "", false, nil
	}
	return c.d.store.LoadCursor(key)
}

func (c cursorStore) SaveCursor(key, cursor string) error {
	if c.d.store == nil {
		return nil
	}
	return c.d.store.SaveCursor(key, cursor)
}

// packet handles a packet the firewall logged: scan detection, and alerts
// for UDP traps (alert only: a datagram's source can be forged).
func (p *pipeline) packet(o event.Observation) {
	if strings.Contains(o.Prefix, ":trap:udp") {
		if p.d.traps.verifying.Load() {
			p.d.log.Warn("udp trap touched (no ban unless the source sends back the reply cookie: it can be forged)", "src", o.Packet.Src, "port", o.Packet.DstPort)
		} else {
			p.d.log.Warn("udp trap touched (alert only, no ban: the source can be forged)", "src", o.Packet.Src, "port", o.Packet.DstPort)
		}
		return
	}
	if p.scans == nil {
		return
	}
	f := p.scans.Observe(o)
	if f == nil {
		return
	}
	ds, out := p.d.decideScan(*f)
	action := "alert only"
	switch {
	case out.Allowlisted:
		action = "allowlisted"
	case out.OverBudget:
		action = "over budget"
		if out.Tripped {
			p.d.log.Warn("scan ban budget exhausted: further scan findings this minute alert only (spoofed sources?)")
		}
	case len(ds) > 0:
		action = "banned"
	}
	if v, _, _ := p.actions.Put(f.Addr); v != nil {
		*v = action
	}
	p.d.log.Info("scan", "src", f.Addr, "reason", f.Reason, "action", action)
}

// scanList is the detector's view with the action taken for each source.
func (p *pipeline) scanList(now time.Time) []api.Scan {
	if p == nil || p.scans == nil {
		return nil
	}
	var out []api.Scan
	for _, s := range p.scans.Scans(now) {
		out = append(out, p.apiScan(s))
	}
	return out
}

func (p *pipeline) apiScan(s portscan.Scan) api.Scan {
	action := "alert only"
	if v, ok := p.actions.Get(s.Src); ok {
		action = *v
	}
	return api.Scan{Src: s.Src, First: s.First, Last: s.Last, Packets: s.Packets, Ports: s.Ports, PortCount: s.PortCount,
		Protocols: s.Protocols, Types: s.Types, Danger: s.Danger, OSGuess: s.OSGuess, Action: action}
}
