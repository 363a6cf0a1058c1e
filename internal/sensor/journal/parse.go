package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

// ErrNoMessage is returned by Parse for an entry without MESSAGE; the
// cursor is still returned, so that a follower moves past the entry.
var ErrNoMessage = errors.New("entry has no MESSAGE")

// entry is the part of one `journalctl --output=json` line that moat uses.
// Values are raw: journalctl writes a field as a string, as an array of
// byte values when it is not valid UTF-8, as an array of those when the
// entry has the field more than once, and as null when it is too large
// (without --all).
type entry struct {
	Cursor   json.RawMessage `json:"__CURSOR"`
	Realtime json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
	Ident    json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	// Trusted: journald sets fields starting with '_' itself and drops
	// them when a client sends them.
	Unit json.RawMessage `json:"_SYSTEMD_UNIT"`
	Comm json.RawMessage `json:"_COMM"`
	UID  json.RawMessage `json:"_UID"`
	PID  json.RawMessage `json:"_PID"`
}

// Parse turns one line of `journalctl --output=json` into an Observation
// and returns the entry's cursor.
//
// Time is __REALTIME_TIMESTAMP (when journald received the entry). Trusted
// is true, with Unit, Comm, UID and PID from _SYSTEMD_UNIT, _COMM, _UID and
// _PID; UID is -1 when the entry has no _UID (kernel messages), so that an
// absent field never reads as root. Source is "journal:" + _SYSTEMD_UNIT,
// or "journal" without one (Source.Run replaces it with its Key).
//
// Line has the shape of a syslog file line after its timestamp and host,
// so that the same filters work on both:
//
//	IDENT[PID]: MESSAGE   e.g. sshd[1234]: Failed password for root from 192.0.2.1 port 22 ssh2
//	IDENT: MESSAGE        when the entry has no _PID
//	MESSAGE               when it has neither SYSLOG_IDENTIFIER nor _COMM
//
// IDENT is SYSLOG_IDENTIFIER, else _COMM; PID is the trusted _PID, not the
// PID the sender claimed (SYSLOG_PID). IDENT and MESSAGE are chosen by the
// sender: `logger -t sshd` yields an sshd-looking Line whose Comm is
// "logger" and UID the user's, and detectors must check those. MESSAGE is
// kept byte for byte (invalid UTF-8 and control characters included; one
// entry is one observation even when MESSAGE holds a '\n'). Line is cut at
// logtail.DefaultMaxLine bytes, with Truncated set.
func Parse(data []byte) (event.Observation, string, error) {
	return parse(data, logtail.DefaultMaxLine)
}

func parse(data []byte, maxLine int) (event.Observation, string, error) {
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return event.Observation{}, "", fmt.Errorf("parse journal entry: %w", err)
	}
	cursor, _ := value(e.Cursor)
	rt, ok := value(e.Realtime)
	if !ok {
		return event.Observation{}, string(cursor), errors.New("parse journal entry: no __REALTIME_TIMESTAMP")
	}
	usec, err := strconv.ParseInt(string(rt), 10, 64)
	if err != nil || usec < 0 {
		return event.Observation{}, string(cursor), fmt.Errorf("parse journal entry: __REALTIME_TIMESTAMP %.40q", rt)
	}
	o := event.Observation{
		Source:  "journal",
		Time:    time.UnixMicro(usec),
		Trusted: true,
		UID:     -1,
	}
	if v, ok := value(e.Unit); ok && len(v) > 0 {
		o.Unit = string(v)
		o.Source = "journal:" + o.Unit
	}
	comm, _ := value(e.Comm)
	o.Comm = string(comm)
	if v, ok := value(e.UID); ok {
		if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
			o.UID = n
		}
	}
	pid, _ := value(e.PID)
	if n, err := strconv.Atoi(string(pid)); err == nil && n > 0 {
		o.PID = n
	} else {
		pid = nil
	}
	msg, ok := value(e.Message)
	if !ok {
		return o, string(cursor), fmt.Errorf("parse journal entry: %w", ErrNoMessage)
	}
	ident, _ := value(e.Ident)
	if len(ident) == 0 {
		ident = comm
	}
	line := make([]byte, 0, min(len(ident)+len(pid)+4+len(msg), maxLine+1))
	if len(ident) > 0 {
		line = append(line, ident...)
		if len(pid) > 0 {
			line = append(line, '[')
			line = append(line, pid...)
			line = append(line, ']')
		}
		line = append(line, ':', ' ')
	}
	line = appendUpTo(line, msg, maxLine+1)
	if len(line) > maxLine {
		line, o.Truncated = line[:maxLine], true
	}
	o.Line = string(line)
	return o, string(cursor), nil
}

func appendUpTo(dst, src []byte, limit int) []byte {
	if room := limit - len(dst); room < len(src) {
		src = src[:max(room, 0)]
	}
	return append(dst, src...)
}

// value decodes one journalctl JSON field value: a string, an array of
// byte values (not UTF-8), or, for a field the entry has several times,
// an array of those, of which it takes the first. ok is false for an
// absent or null field, or anything else.
func value(raw json.RawMessage) (v []byte, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var bs []byte
		if byteArray(raw, &bs) {
			return bs, true
		}
		var multi []json.RawMessage
		if json.Unmarshal(raw, &multi) != nil || len(multi) == 0 {
			return nil, false
		}
		first := bytes.TrimSpace(multi[0])
		if len(first) > 0 && first[0] == '[' { // one level only
			if byteArray(first, &bs) {
				return bs, true
			}
			return nil, false
		}
		if len(first) > 0 && first[0] == '"' {
			return value(first)
		}
	}
	return nil, false
}

// byteArray decodes a JSON array of integers 0–255.
func byteArray(raw json.RawMessage, out *[]byte) bool {
	var ns []int
	if json.Unmarshal(raw, &ns) != nil {
		return false
	}
	b := make([]byte, len(ns))
	for i, n := range ns {
		if n < 0 || n > 255 {
			return false
		}
		b[i] = byte(n)
	}
	*out = b
	return true
}
