package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Backend is what the daemon offers through the API.
type Backend interface {
	Status() Status
	Scans() ([]Scan, error)
	Bans(limit int) (bans []Ban, total int, err error)
	Ban(req BanRequest) (Ban, error)
	Unban(p netip.Prefix) (bool, error)
	UnbanAll() (int, error)
	Allowlist() ([]AllowEntry, error)
	AllowlistAdd(req AllowRequest) (lifted int, err error)
	AllowlistRemove(p netip.Prefix) (bool, error)
	Reload() error
}

// RefusedError marks a request the daemon understood and refused (an
// allowlisted address, a bad reload); it is answered 409 with its message.
type RefusedError struct{ Err error }

func (e RefusedError) Error() string { return e.Err.Error() }
func (e RefusedError) Unwrap() error { return e.Err }

// maxBody bounds request bodies: the API takes small JSON documents only.
const maxBody = 64 << 10

// Handler serves the API for b.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Status(), nil) })
	mux.HandleFunc("GET /v1/scans", func(w http.ResponseWriter, r *http.Request) {
		scans, err := b.Scans()
		reply(w, scans, err)
	})
	mux.HandleFunc("GET /v1/bans", func(w http.ResponseWriter, r *http.Request) {
		limit := 0
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				httpError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a number >= 0", l))
				return
			}
			limit = n
		}
		bans, total, err := b.Bans(limit)
		if err == nil {
			w.Header().Set("X-Total-Count", strconv.Itoa(total))
		}
		reply(w, bans, err)
	})
	mux.HandleFunc("POST /v1/bans", func(w http.ResponseWriter, r *http.Request) {
		var req BanRequest
		if !decode(w, r, &req) {
			return
		}
		ban, err := b.Ban(req)
		reply(w, ban, err)
	})
	mux.HandleFunc("DELETE /v1/bans", func(w http.ResponseWriter, r *http.Request) {
		n, err := b.UnbanAll()
		reply(w, Count{n}, err)
	})
	mux.HandleFunc("DELETE /v1/bans/{prefix...}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := prefixParam(w, r)
		if !ok {
			return
		}
		found, err := b.Unban(p)
		if err == nil && !found {
			httpError(w, http.StatusNotFound, fmt.Errorf("%s is not banned", p))
			return
		}
		reply(w, Count{1}, err)
	})
	mux.HandleFunc("GET /v1/allowlist", func(w http.ResponseWriter, r *http.Request) {
		es, err := b.Allowlist()
		reply(w, es, err)
	})
	mux.HandleFunc("POST /v1/allowlist", func(w http.ResponseWriter, r *http.Request) {
		var req AllowRequest
		if !decode(w, r, &req) {
			return
		}
		n, err := b.AllowlistAdd(req)
		reply(w, Count{n}, err)
	})
	mux.HandleFunc("DELETE /v1/allowlist/{prefix...}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := prefixParam(w, r)
		if !ok {
			return
		}
		found, err := b.AllowlistRemove(p)
		if err == nil && !found {
			httpError(w, http.StatusNotFound, fmt.Errorf("%s is not in the runtime allowlist", p))
			return
		}
		reply(w, Count{1}, err)
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) { reply(w, Count{}, b.Reload()) })
	return mux
}

func prefixParam(w http.ResponseWriter, r *http.Request) (netip.Prefix, bool) {
	p, err := ParsePrefix(r.PathValue("prefix"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return netip.Prefix{}, false
	}
	return p, true
}

// ParsePrefix reads an address (a /32 or /128) or a prefix, unmapping
// IPv4-mapped addresses and refusing host bits and zones.
func ParsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q: zones are not allowed", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a prefix", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("prefix %s has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		if _, ok := errors.AsType[RefusedError](err); ok {
			code = http.StatusConflict
		}
		httpError(w, code, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}

// Serve listens on the unix socket at path (mode 0600: the API is
// root-equivalent) and serves h until ctx ends.
func Serve(ctx context.Context, path string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("api: create socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path) // a stale socket from a crash
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", path, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
