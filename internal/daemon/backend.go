package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/event"
)

var _ api.Backend = (*Daemon)(nil)

// Status reports health: unhealthy when a source died, the kernel sets are
// missing, or the store is unusable or was rebuilt.
func (d *Daemon) Status() api.Status {
	d.mu.RLock()
	cfg, pipe := d.cfg, d.pipe
	d.mu.RUnlock()
	st := api.Status{Started: d.started, Config: d.opts.ConfigPath}
	present, err := d.enf.Present()
	st.Kernel = api.KernelStatus{Table: cfg.Policy.Table, Present: present && err == nil, Bans: len(d.enf.Live()), Repairs: d.repairs.Load()}
	if !st.Kernel.Present {
		st.Problems = append(st.Problems, "the ban sets are missing from the kernel")
	}
	if d.store != nil {
		st.Store.Path = d.store.Path()
		if rec, why := d.store.Recovered(); rec {
			st.Store.Recovered, st.Store.Reason = true, why
			st.Problems = append(st.Problems, "the database was corrupt and was rebuilt: "+why)
		}
	}
	if e := d.storeErr.Load(); e != nil {
		st.Store.Error = *e
		st.Problems = append(st.Problems, "store: "+*e)
	}
	perJail := map[string]int{}
	if d.store != nil {
		if n, err := d.store.ActiveBansPerJail(time.Now()); err == nil {
			perJail = n
		}
	}
	if pipe != nil {
		for _, s := range pipe.sources {
			ss := s.status()
			st.Sources = append(st.Sources, ss)
			if !ss.Following {
				st.Problems = append(st.Problems, fmt.Sprintf("source %s is not following: %s", ss.ID, ss.Error))
			}
		}
		for _, j := range pipe.jails {
			js := j.jail.Stats()
			st.Jails = append(st.Jails, api.JailStatus{Name: j.cfg.Name, Filter: j.cfg.Filter, Lines: js.Lines, Matches: js.Matches,
				Refused: js.Refused, CurrentBans: perJail[j.cfg.Name], TotalBans: j.bans.Load()})
		}
	}
	if pipe != nil && pipe.scans != nil {
		top, ports := pipe.scans.Top(time.Now(), 10)
		for _, sc := range top {
			st.TopScanners = append(st.TopScanners, pipe.apiScan(sc))
		}
		for _, pc := range ports {
			st.TopPorts = append(st.TopPorts, api.PortCount{Proto: pc.Proto, Port: pc.Port, Sources: pc.Sources})
		}
	}
	st.TrapHits = d.traps.accepted.Load()
	st.TrapChallenges, st.TrapProven = d.traps.challenged.Load(), d.traps.proven.Load()
	st.Healthy = len(st.Problems) == 0
	return st
}

// Scans lists current and recent scanners with the action taken.
func (d *Daemon) Scans() ([]api.Scan, error) {
	return d.currentPipe().scanList(time.Now()), nil
}

// Bans lists the active bans, most recent first, at most limit (0: all):
// from the store, or from the kernel's view when the store is unusable.
func (d *Daemon) Bans(limit int) ([]api.Ban, int, error) {
	if d.store == nil {
		live := d.enf.Live()
		var out []api.Ban
		for _, b := range live {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, api.Ban{Prefix: b.Prefix, Expires: b.Expires, Reason: "(store unavailable)"})
		}
		return out, len(live), nil
	}
	n := limit
	if n <= 0 {
		n = -1 // SQLite: no limit
	}
	bans, total, err := d.store.RecentBans(time.Now(), n)
	if err != nil {
		return nil, 0, err
	}
	out := make([]api.Ban, len(bans))
	for i, b := range bans {
		out[i] = api.Ban{Prefix: b.Prefix, Jail: b.Jail, Reason: b.Reason, Created: b.Created, Expires: b.Expires, Offence: b.Offence, Evidence: b.Evidence}
	}
	return out, total, nil
}

// Ban bans by hand, through the same allowlist as every engine.
func (d *Daemon) Ban(req api.BanRequest) (api.Ban, error) {
	d.mu.RLock()
	dc, cfg := d.decider, d.cfg
	d.mu.RUnlock()
	dur := req.Duration
	switch {
	case dur == 0:
		dur = cfg.Bans.BanTime
	case dur < 0:
		dur = 0 // permanent
	}
	reason := req.Reason
	if reason == "" {
		reason = "manual"
	}
	dec, err := dc.Manual(req.Prefix, dur, reason, req.Force)
	if err != nil {
		return api.Ban{}, api.RefusedError{Err: err}
	}
	if err := d.applyNow([]event.Decision{dec}); err != nil {
		return api.Ban{}, err
	}
	return api.Ban{Prefix: dec.Prefix, Jail: dec.Jail, Reason: dec.Reason, Created: dec.Time, Expires: dec.Expires, Offence: dec.Offence}, nil
}

// Unban lifts one ban.
func (d *Daemon) Unban(p netip.Prefix) (bool, error) {
	found := false
	for _, b := range d.enf.Live() {
		if b.Prefix == p {
			found = true
		}
	}
	if d.store != nil {
		if _, ok, err := d.store.Ban(p); err == nil && ok {
			found = true
		}
	}
	if !found {
		return false, nil
	}
	d.mu.RLock()
	dc := d.decider
	d.mu.RUnlock()
	// Through the decider, so that it forgets the ban too.
	dec, err := dc.ManualUnban(p, "manual")
	if err != nil {
		return false, api.RefusedError{Err: err}
	}
	return true, d.applyNow([]event.Decision{dec})
}

// UnbanAll lifts every ban.
func (d *Daemon) UnbanAll() (int, error) {
	live := d.enf.Live()
	ds := make([]event.Decision, len(live))
	for i, b := range live {
		ds[i] = event.Decision{Op: event.Unban, Prefix: b.Prefix, Time: time.Now()}
	}
	if err := d.applyNow(ds); err != nil {
		return 0, err
	}
	n := len(live)
	if d.store != nil {
		m, err := d.store.RemoveAll() // anything the kernel had dropped already
		if err != nil {
			return n, err
		}
		n = max(n, m)
	}
	return n, nil
}

// Allowlist lists every allowlist entry with its reason.
func (d *Daemon) Allowlist() ([]api.AllowEntry, error) {
	comments := map[netip.Prefix]string{}
	if d.store != nil {
		if es, err := d.store.Allowlist(); err == nil {
			for _, e := range es {
				comments[e.Prefix] = e.Comment
			}
		}
	}
	var out []api.AllowEntry
	for _, e := range d.allow.Entries() {
		out = append(out, api.AllowEntry{Prefix: e.Prefix, Why: e.Why, Comment: comments[e.Prefix]})
	}
	return out, nil
}

// AllowlistAdd adds to the runtime allowlist and lifts the bans it covers.
func (d *Daemon) AllowlistAdd(req api.AllowRequest) (int, error) {
	if d.store == nil {
		return 0, errors.New("the store is unavailable; add the address to [bans] allowlist in the policy instead")
	}
	if err := d.store.AllowlistAdd(req.Prefix, req.Comment); err != nil {
		return 0, err
	}
	if err := d.allow.Refresh(); err != nil {
		d.log.Warn("allowlist refresh", "err", err)
	}
	var lift []event.Decision
	for _, b := range d.enf.Live() {
		if b.Prefix.Overlaps(req.Prefix) {
			lift = append(lift, event.Decision{Op: event.Unban, Prefix: b.Prefix, Time: time.Now()})
		}
	}
	return len(lift), d.applyNow(lift)
}

// AllowlistRemove removes a runtime allowlist entry.
func (d *Daemon) AllowlistRemove(p netip.Prefix) (bool, error) {
	if d.store == nil {
		return false, errors.New("the store is unavailable")
	}
	ok, err := d.store.AllowlistRemove(p)
	if err == nil && ok {
		err = d.allow.Refresh()
	}
	return ok, err
}
