package main

// The memory part: userhook on a fresh SQLite file takes --memory-users new users through POST /users, and its
// resident memory is read from /proc after the load and again after the consumers caught up.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// memoryLimitMB is the target: userhook's RSS after 1,000,000 new users.
const memoryLimitMB = 150

// vm is a process's resident memory from /proc/PID/status, in kB: now (VmRSS) and its peak so far (VmHWM).
type vm struct{ rss, hwm int64 }

// memoryRun is what the memory part measured.
type memoryRun struct {
	acked    int64 // new users answered 2xx
	requests int64 // every answer, errors included
	errors   int64 // wrk's errors: connect, read, write, timeout and status
	runs     int   // wrk runs it took
	load     time.Duration
	p99US    float64 // the largest p99 of the runs
	idle     vm      // before the load
	loaded   vm      // right after the load
	caught   vm      // after the consumers caught up
	catchUp  time.Duration
	caughtOK bool
	last     string // the positions /readyz showed last
}

// memory runs the part: `userhook serve` on a fresh SQLite file, wrk runs of new users one after the other
// until c.memoryUsers were acknowledged (each run as long as the rate so far says the rest takes), then VmRSS
// and VmHWM after the load and after the consumers caught up.
func (c config) memory(ctx context.Context) (memoryRun, error) {
	dir := filepath.Join(c.work, "memory")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return memoryRun{}, err
	}
	defer os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(dir, "userhook.log"))
	if err != nil {
		return memoryRun{}, err
	}
	defer logf.Close()
	p, err := startTo(c.bin, []string{"serve"}, userhookEnv(filepath.Join(dir, "userhook.db")), logf)
	if err != nil {
		return memoryRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	defer p.stop()
	if err := waitReady(ctx, p.url, 60*time.Second); err != nil {
		return memoryRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	pid := p.cmd.Process.Pid
	var m memoryRun
	if m.idle, err = readVM(pid); err != nil {
		return m, err
	}

	env := []string{"TOKEN=" + token(), "KEY=" + apiKey}
	target := int64(c.memoryUsers)
	began := time.Now()
	var rate float64 // of the last run: it falls as the file grows
	for m.acked < target {
		run := c
		run.duration = c.duration
		if rate > 0 {
			// As long as the rest takes at that rate, plus a little so that the last run rarely falls short.
			run.duration = time.Duration(float64(target-m.acked)/rate*1.03*float64(time.Second)) + 500*time.Millisecond
		}
		run.duration = min(max(run.duration, time.Second), time.Minute).Round(time.Second)
		r, err := run.wrk(ctx, p.url, "users.lua", append(env, fmt.Sprintf("PREFIX=mem-%d", m.runs))...)
		if err != nil {
			return m, err
		}
		m.runs++
		m.requests += r.Requests
		m.acked += r.Requests - r.StatusErrors
		rate = float64(r.Requests-r.StatusErrors) / (float64(r.DurationUS) / 1e6)
		m.errors += r.Errors
		m.p99US = max(m.p99US, r.P99US)
		fmt.Fprintf(os.Stderr, "  memory: %d of %d new users after %d wrk runs (%.0f req/s in the last)\n", m.acked, target, m.runs, r.rps())
		if r.Requests == r.StatusErrors {
			return m, fmt.Errorf("wrk run %d: every answer was an error: %s", m.runs, tail(logf.Name()))
		}
	}
	end := time.Now()
	m.load = end.Sub(began)
	if m.loaded, err = readVM(pid); err != nil {
		return m, err
	}
	m.catchUp, m.caughtOK, m.last = caughtUp(ctx, []string{p.url}, end, c.scaleLimit)
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if m.caught, err = readVM(pid); err != nil {
		return m, err
	}
	return m, nil
}

// readVM reads VmRSS and VmHWM of a process.
func readVM(pid int) (vm, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return vm{}, err
	}
	defer f.Close()
	var v vm
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &v.rss
		case "VmHWM":
			dst = &v.hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return vm{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		*dst = kb
	}
	if err := sc.Err(); err != nil {
		return vm{}, err
	}
	if v.rss == 0 || v.hwm == 0 {
		return vm{}, fmt.Errorf("/proc/%d/status shows no VmRSS or VmHWM", pid)
	}
	return v, nil
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

func (c config) memoryReport(m memoryRun) {
	fmt.Printf("memory: %d new users (POST /users) into a fresh SQLite file, %d connections, %d wrk runs in %.1f s: %.0f req/s, p99 <= %.2f ms, %d errors\n",
		m.acked, c.conns, m.runs, m.load.Seconds(), float64(m.requests)/m.load.Seconds(), m.p99US/1000, m.errors)
	caught := fmt.Sprintf("%.2f s", m.catchUp.Seconds())
	if !m.caughtOK {
		caught = fmt.Sprintf("not within %s (%s)", c.scaleLimit, m.last)
	}
	fmt.Printf("%-42s %8s %8s\n", "userhook's memory (/proc/PID/status)", "VmRSS", "VmHWM")
	for _, row := range []struct {
		name string
		v    vm
	}{{"idle, before the load", m.idle}, {"right after the load", m.loaded}, {"after the consumers caught up", m.caught}} {
		fmt.Printf("  %-40s %5.0f MB %5.0f MB\n", row.name, mb(row.v.rss), mb(row.v.hwm))
	}
	fmt.Printf("consumers caught up %s after the load\n", caught)
	fmt.Println()
	fmt.Println("targets")
	rss := mb(max(m.loaded.rss, m.caught.rss))
	note := ""
	if m.acked < 1000000 {
		note = "; the target is stated for 1000000"
	}
	fmt.Printf("  memory          RSS %.0f MB after %d new users, the larger of the two readings (<= %d MB%s): %s\n",
		rss, m.acked, memoryLimitMB, note, met(rss <= memoryLimitMB && m.caughtOK))
}
