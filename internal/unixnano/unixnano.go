// Package unixnano is how the stores keep times in integer columns: Unix nanoseconds, exact and in order,
// with 0 standing for the zero time (never set).
package unixnano

import "time"

// Of is t's column value: 0 for the zero time.
func Of(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time is the time of a column value, in UTC: the zero time for 0.
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
