package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a TOML duration string: Go's units plus d (days) and w
// (weeks), e.g. "10m", "1h30m", "7d", "1w". A unit is required: a bare
// number is an error, never seconds by guess. (A struct, so that the TOML
// decoder refuses an integer rather than reading it as nanoseconds.)
type Duration struct{ D time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.D = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.D.String()), nil }

func dur(d time.Duration) Duration { return Duration{d} }

// ParseDuration reads a duration with d and w units allowed.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("duration %q: want a number and a unit, e.g. 10m, 1h, 7d, 1w", s)
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		var mult time.Duration
		switch unit {
		case "d":
			mult = 24 * time.Hour
		case "w":
			mult = 7 * 24 * time.Hour
		case "":
			return 0, fmt.Errorf("duration %q: missing unit (s, m, h, d or w)", s)
		default:
			v, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %v", s, strings.TrimPrefix(err.Error(), "time: "))
			}
			total += v
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f > 10000 {
			return 0, fmt.Errorf("duration %q: bad number %q", s, num)
		}
		total += time.Duration(f * float64(mult))
	}
	if total < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return total, nil
}
