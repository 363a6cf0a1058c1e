package authfail

import (
	"testing"
	"time"
)

func TestParseSyslogTime(t *testing.T) {
	utc := time.UTC
	at := func(y int, mo time.Month, d, h, mi, s int) time.Time { return time.Date(y, mo, d, h, mi, s, 0, utc) }
	for _, tc := range []struct {
		name string
		line string
		now  time.Time
		want time.Time
	}{
		// SECURITY.md A12 / R14: the year nearest to now
		{"new year, read just after", "Dec 31 23:59:59 host sshd[1]: x", at(2026, 1, 1, 0, 0, 5), at(2025, 12, 31, 23, 59, 59)},
		{"new year, clock skew", "Jan  1 00:00:01 host sshd[1]: x", at(2025, 12, 31, 23, 59, 58), at(2026, 1, 1, 0, 0, 1)},
		{"Feb 29, not a leap year now", "Feb 29 12:00:00 host sshd[1]: x", at(2026, 3, 1, 0, 0, 0), at(2024, 2, 29, 12, 0, 0)},
		{"Feb 29 in a leap year", "Feb 29 12:00:00 host sshd[1]: x", at(2028, 3, 1, 0, 0, 0), at(2028, 2, 29, 12, 0, 0)},
		{"Feb 29 nearer ahead", "Feb 29 12:00:00 host sshd[1]: x", at(2027, 12, 1, 0, 0, 0), at(2028, 2, 29, 12, 0, 0)},
		{"single-digit day", "Feb 7 16:01:07 linux sshd[5106]: x", at(2026, 2, 10, 0, 0, 0), at(2026, 2, 7, 16, 1, 7)},
		{"fraction", "Mar  3 00:17:22.123 host sshd[1]: x", at(2026, 3, 3, 1, 0, 0), time.Date(2026, 3, 3, 0, 17, 22, 123000000, utc)},
		{"PRI", "<38>Mar  3 00:17:22 host sshd[1]: x", at(2026, 3, 3, 1, 0, 0), at(2026, 3, 3, 0, 17, 22)},
		{"weekday and year", "Fri Jan 19 12:20:33 2007 [pid 27202] x", at(2026, 3, 3, 1, 0, 0), at(2007, 1, 19, 12, 20, 33)},
		// ISO 8601 / RFC 3339
		{"RFC 3339", "2015-04-16T18:02:50.321974+00:00 host sshd[2716]: x", at(2026, 1, 1, 0, 0, 0), time.Date(2015, 4, 16, 18, 2, 50, 321974000, utc)},
		{"RFC 3339 offset", "2019-07-08T17:40:16-04:00 x", at(2026, 1, 1, 0, 0, 0), at(2019, 7, 8, 21, 40, 16)},
		{"RFC 5424", "<38>1 2019-07-08T17:40:16.954167-04:00 host sshd 1 - - x", at(2026, 1, 1, 0, 0, 0), time.Date(2019, 7, 8, 21, 40, 16, 954167000, utc)},
		{"Z", "2019-01-03T08:50:04.634875Z 113 [Note] x", at(2026, 1, 1, 0, 0, 0), time.Date(2019, 1, 3, 8, 50, 4, 634875000, utc)},
		{"space, comma, no zone", "2013-11-16 21:59:30,121 novo proftpd[25891] x", at(2026, 1, 1, 0, 0, 0), time.Date(2013, 11, 16, 21, 59, 30, 121000000, utc)},
		{"double space, one-digit hour", "2015-10-07  8:25:38 139845235329792 [Warning] x", at(2026, 1, 1, 0, 0, 0), at(2015, 10, 7, 8, 25, 38)},
		// web servers
		{"access log", `192.0.2.1 - - [02/Jan/2006:15:04:05 -0700] "GET / HTTP/1.1" 200 1`, at(2026, 1, 1, 0, 0, 0), at(2006, 1, 2, 22, 4, 5)},
		{"apache error log", "[Sat Jul 20 21:34:49.453232 2013] [access_compat:error] x", at(2026, 1, 1, 0, 0, 0), time.Date(2013, 7, 20, 21, 34, 49, 453232000, utc)},
		{"nginx error log", "2012/04/09 11:53:29 [error] 2865#0: *66647 x", at(2026, 1, 1, 0, 0, 0), at(2012, 4, 9, 11, 53, 29)},
		{"TAI64N", "@400000004c91b044077a9e94 imap-login: x", at(2026, 1, 1, 0, 0, 0), time.Unix(0x4c91b044, 0x077a9e94)},
		{"MySQL", "130324  0:04:00 [Warning] x", at(2026, 1, 1, 0, 0, 0), at(2013, 3, 24, 0, 4, 0)},
	} {
		got, ok := ParseSyslogTime(tc.line, tc.now)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%s: ParseSyslogTime(%q) = %v, %v, want %v", tc.name, tc.line, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"", "x", "Feb 30 12:00:00 host x", "Jan 32 12:00:00 host x", "Jan  2 25:00:00 host x",
		"2019-02-29T00:00:00Z x", "2019-13-01T00:00:00Z x", "[02/Foo/2006:15:04:05 -0700]", "Jan", "2019-07-08T",
	} {
		if got, ok := ParseSyslogTime(bad, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
			t.Errorf("ParseSyslogTime(%q) = %v, want none", bad, got)
		}
	}
	// year-less stamps are read in now's location
	cet := time.FixedZone("CET", 3600)
	got, ok := ParseSyslogTime("Mar  3 00:17:22 host sshd[1]: x", time.Date(2026, 3, 3, 1, 0, 0, 0, cet))
	if !ok || got.Location() != cet || got.Hour() != 0 {
		t.Errorf("location: %v", got)
	}
}

func FuzzParseSyslogTime(f *testing.F) {
	for _, s := range []string{"Feb 29 12:00:00 x", "2019-07-08T17:40:16.954167-04:00", "[02/Jan/2006:15:04:05 -0700]", "@400000004c91b044077a9e94", "130324  0:04:00"} {
		f.Add(s)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := ParseSyslogTime(s, now); ok && got.IsZero() {
			t.Fatalf("zero time from %q", s)
		}
	})
}
