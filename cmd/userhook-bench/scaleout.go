package main

// The scale-out part: userhook on PostgreSQL + NATS JetStream, one instance and two, against C2-PG (the same
// rows group-committed into the same PostgreSQL) and beside the embedded default, under the new-users load;
// then how long the read model and the delivery consumer take to catch up, and the CPU every acknowledged
// event costs in userhook, PostgreSQL and NATS.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

// The setups of the scale-out part, in the order each round runs them.
const (
	setupC2       = "C2-PG"
	setupOne      = "one instance"
	setupTwo      = "two instances"
	setupEmbedded = "embedded (SQLite)"
)

var scaleSetups = []string{setupC2, setupOne, setupTwo, setupEmbedded}

// The consumers /readyz reports positions of; "caught up" is both at the store's position.
var caughtUpConsumers = []string{"users-projection", "webhook-deliveries"}

// ticks is CPU time in clock ticks: of the processes measured, of PostgreSQL and of NATS (utime + stime, and
// the children's, from /proc/<pid>/stat), and the machine's busy time (/proc/stat).
type ticks struct{ server, postgres, nats, machine int64 }

func (t ticks) sub(u ticks) ticks {
	return ticks{t.server - u.server, t.postgres - u.postgres, t.nats - u.nats, t.machine - u.machine}
}

// scaleRun is one setup's measurement in one round.
type scaleRun struct {
	res      result // for two instances: requests and rates summed, latencies the larger
	rps      float64
	acked    int64         // 2xx (and 3xx) responses
	caught   time.Duration // after the load: until every consumer reached the store; <0: not measured
	caughtOK bool
	cpu      ticks
	wrkCPU   time.Duration // the load generators' own CPU
	elapsed  time.Duration // from the load's start to the last CPU reading
}

// others is the CPU every other process of the machine used meanwhile, in ticks.
func (r scaleRun) others(clk int64) int64 {
	return r.cpu.machine - r.cpu.server - r.cpu.postgres - r.cpu.nats - int64(r.wrkCPU.Seconds()*float64(clk))
}

// scaleout runs the part: rounds of every setup side by side, then the report. Without reachable servers it
// says so and returns nil.
func (c config) scaleout(ctx context.Context) error {
	if err := c.scaleReachable(ctx); err != nil {
		fmt.Printf("scale-out part skipped: %v\n", err)
		return nil
	}
	clk := clockTicks()
	samples := map[string][]scaleRun{}
	for round := 1; round <= c.rounds; round++ {
		for _, setup := range scaleSetups {
			fmt.Fprintf(os.Stderr, "scale-out round %d/%d: %s\n", round, c.rounds, setup)
			var r scaleRun
			var err error
			switch setup {
			case setupC2:
				r, err = c.scaleC2(ctx, round)
			case setupOne:
				r, err = c.scaleUserhook(ctx, round, 1)
			case setupTwo:
				r, err = c.scaleUserhook(ctx, round, 2)
			case setupEmbedded:
				r, err = c.scaleEmbedded(ctx, round)
			}
			if err != nil {
				return fmt.Errorf("scale-out, %s: %w", setup, err)
			}
			samples[setup] = append(samples[setup], r)
		}
	}
	c.scaleReport(samples, clk)
	return nil
}

// scaleReachable says why the part cannot run, if it cannot.
func (c config) scaleReachable(ctx context.Context) error {
	if c.postgres == "" {
		return errors.New("no PostgreSQL server given (--postgres or USERHOOK_BENCH_POSTGRES)")
	}
	if c.nats == "" {
		return errors.New("no NATS server given (--nats or USERHOOK_BENCH_NATS)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.postgres)
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s cannot be reached: %v", redact(c.postgres), err)
	}
	_ = conn.Close(ctx)
	nc, err := nats.Connect(c.nats, nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("NATS at %s cannot be reached: %v", redact(c.nats), err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(5 * time.Second))
	if err == nil {
		_, err = js.AccountInfo()
	}
	if err != nil {
		return fmt.Errorf("NATS at %s has no JetStream: %v", redact(c.nats), err)
	}
	return nil
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(the URL given)"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshSchema creates a schema of its own on the PostgreSQL server and returns a URL whose connections use it,
// and the function that drops it.
func (c config) freshSchema(ctx context.Context) (string, func(), error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, c.postgres)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.Background())
	schema := "uhbench_" + randomHex(6)
	if _, err := conn.Exec(cctx, `CREATE SCHEMA `+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.postgres)
		if err == nil {
			_, err = conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`)
			_ = conn.Close(ctx)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "userhook-bench: dropping schema %s: %v (drop it by hand)\n", schema, err)
		}
	}
	u, err := url.Parse(c.postgres)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// dropNamespace deletes the JetStream streams (and so their consumers) of a namespace, key-value and object
// stores included.
func (c config) dropNamespace(ns string) {
	err := func() error {
		nc, err := nats.Connect(c.nats, nats.Timeout(5*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := nc.JetStream(nats.MaxWait(10 * time.Second))
		if err != nil {
			return err
		}
		var names []string
		for name := range js.StreamNames() {
			if strings.HasPrefix(name, ns) || strings.HasPrefix(name, "KV_"+ns) || strings.HasPrefix(name, "OBJ_"+ns) {
				names = append(names, name)
			}
		}
		for _, name := range names {
			if err := js.DeleteStream(name); err != nil && !errors.Is(err, nats.ErrStreamNotFound) {
				return fmt.Errorf("delete stream %s: %w", name, err)
			}
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "userhook-bench: deleting the JetStream streams of %s: %v (delete them by hand)\n", ns, err)
	}
}

// scaleC2 measures C2-PG on a fresh schema.
func (c config) scaleC2(ctx context.Context, round int) (scaleRun, error) {
	db, drop, err := c.freshSchema(ctx)
	if err != nil {
		return scaleRun{}, err
	}
	defer drop()
	logf, err := os.Create(filepath.Join(c.work, fmt.Sprintf("c2pg-%d.log", round)))
	if err != nil {
		return scaleRun{}, err
	}
	defer logf.Close()
	p, err := startTo(c.self, []string{"ceiling", "--level", "2", "--postgres", db}, nil, logf)
	if err != nil {
		return scaleRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	defer p.stop()
	return c.measure(ctx, []*proc{p}, fmt.Sprintf("c2pg-%d", round), false)
}

// scaleUserhook measures n `userhook serve` instances on one fresh schema and one fresh NATS namespace.
func (c config) scaleUserhook(ctx context.Context, round, n int) (scaleRun, error) {
	db, drop, err := c.freshSchema(ctx)
	if err != nil {
		return scaleRun{}, err
	}
	defer drop()
	ns := "bench" + randomHex(4) + "_"
	defer c.dropNamespace(ns)
	env := append(userhookEnv(db),
		"USERHOOK_PUBSUB="+c.nats, "USERHOOK_NATS_NAMESPACE="+ns)
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i := 0; i < n; i++ {
		logf, err := os.Create(filepath.Join(c.work, fmt.Sprintf("scale-%d-%d-%d.log", round, n, i)))
		if err != nil {
			return scaleRun{}, err
		}
		defer logf.Close()
		p, err := startTo(c.bin, []string{"serve"}, env, logf)
		if err != nil {
			return scaleRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
		}
		procs = append(procs, p)
		if err := waitReady(ctx, p.url, 60*time.Second); err != nil {
			return scaleRun{}, fmt.Errorf("instance %d: %w: %s", i+1, err, tail(logf.Name()))
		}
	}
	return c.measure(ctx, procs, fmt.Sprintf("so%d-%d", n, round), true)
}

// scaleEmbedded measures the embedded default (a SQLite file, in-process pub/sub) under the same load.
func (c config) scaleEmbedded(ctx context.Context, round int) (scaleRun, error) {
	dir := filepath.Join(c.work, fmt.Sprintf("scale-embedded-%d", round))
	defer os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(c.work, fmt.Sprintf("scale-embedded-%d.log", round)))
	if err != nil {
		return scaleRun{}, err
	}
	defer logf.Close()
	p, err := startTo(c.bin, []string{"serve"}, userhookEnv(filepath.Join(dir, "userhook.db")), logf)
	if err != nil {
		return scaleRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	defer p.stop()
	if err := waitReady(ctx, p.url, 60*time.Second); err != nil {
		return scaleRun{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	return c.measure(ctx, []*proc{p}, fmt.Sprintf("soe-%d", round), true)
}

func userhookEnv(database string) []string {
	return []string{
		"USERHOOK_DATABASE=" + database, "USERHOOK_JWT_SECRET=" + secret,
		"USERHOOK_API_KEYS=" + apiKey + ":admin", "USERHOOK_WEBHOOK_SECRETS=whsec_" + base64.StdEncoding.EncodeToString(webhookKey),
	}
}

// measure drives every process with its own wrk at the same time (the connections split between them), then,
// with catchUp, waits until every consumer reached the store's position; the CPU of the processes, of
// PostgreSQL and of NATS is read right before the load and right after the catch-up.
func (c config) measure(ctx context.Context, procs []*proc, prefix string, catchUp bool) (scaleRun, error) {
	pids := make([]int, len(procs))
	urls := make([]string, len(procs))
	for i, p := range procs {
		pids[i], urls[i] = p.cmd.Process.Pid, p.url
	}
	env := []string{"TOKEN=" + token(), "KEY=" + apiKey}
	conns := max(1, c.conns/len(procs))
	results := make([]result, len(procs))
	errs := make([]error, len(procs))
	before, began := cpuNow(pids), time.Now()
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.wrkRun(ctx, p.url, "users.lua", conns, append(env, fmt.Sprintf("PREFIX=%s-%c", prefix, 'a'+i))...)
		}()
	}
	wg.Wait()
	end := time.Now()
	if err := errors.Join(errs...); err != nil {
		return scaleRun{}, err
	}
	run := scaleRun{caught: -1}
	if catchUp {
		var last string
		run.caught, run.caughtOK, last = caughtUp(ctx, urls, end, c.scaleLimit)
		if ctx.Err() != nil {
			return scaleRun{}, ctx.Err()
		}
		if !run.caughtOK {
			fmt.Fprintf(os.Stderr, "  not caught up within %s: %s\n", c.scaleLimit, last)
		}
	}
	run.cpu = cpuNow(pids).sub(before)
	run.elapsed = time.Since(began)
	for _, r := range results {
		run.res.Requests += r.Requests
		run.res.Errors += r.Errors
		run.res.StatusErrors += r.StatusErrors
		run.res.DurationUS = max(run.res.DurationUS, r.DurationUS)
		run.res.P50US = math.Max(run.res.P50US, r.P50US)
		run.res.P99US = math.Max(run.res.P99US, r.P99US)
		run.rps += r.rps()
		run.acked += r.Requests - r.StatusErrors
		run.wrkCPU += r.cpu
	}
	return run, nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, base string, limit time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz did not answer 200 within %s", base, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// caughtUp polls /readyz of every instance every 50 ms from `from` until each shows every consumer at the store's
// position, for at most limit; it returns the time taken and, when it gave up, the positions last seen.
func caughtUp(ctx context.Context, urls []string, from time.Time, limit time.Duration) (time.Duration, bool, string) {
	client := &http.Client{Timeout: 5 * time.Second}
	last := "no positions read"
	for {
		all := true
		var seen []string
		for _, u := range urls {
			pos, err := readPositions(client, u)
			if err != nil {
				all = false
				seen = append(seen, err.Error())
				continue
			}
			seen = append(seen, fmt.Sprint(pos))
			for _, name := range caughtUpConsumers {
				if p, ok := pos[name]; !ok || p < pos["store"] {
					all = false
				}
			}
		}
		last = strings.Join(seen, "; ")
		elapsed := time.Since(from)
		if all {
			return elapsed, true, last
		}
		if elapsed > limit {
			return limit, false, last
		}
		select {
		case <-ctx.Done():
			return elapsed, false, last
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readPositions(client *http.Client, base string) (map[string]int64, error) {
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Positions map[string]int64 `json:"positions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("/readyz: %w", err)
	}
	if _, ok := body.Positions["store"]; !ok {
		return nil, fmt.Errorf("/readyz (%d) shows no store position", resp.StatusCode)
	}
	return body.Positions, nil
}

// cpuNow reads the CPU time of pids, of every process named postgres and of every nats-server, and the
// machine's.
func cpuNow(pids []int) ticks {
	t := ticks{machine: machineBusy()}
	for _, pid := range pids {
		if _, n, ok := procStat(pid); ok {
			t.server += n
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, n, ok := procStat(pid)
		switch {
		case !ok:
		case comm == "postgres":
			t.postgres += n
		case comm == "nats-server":
			t.nats += n
		}
	}
	return t
}

// procStat reads a process's name and its utime + stime + cutime + cstime. The children's times count so that
// a PostgreSQL backend that exits between two readings still counts: its parent, the postmaster, reaps it and
// takes over its times.
func procStat(pid int) (string, int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	// After the name: state (field 3), ..., utime (14), stime (15), cutime (16), cstime (17).
	f := strings.Fields(s[closing+1:])
	if len(f) < 15 {
		return "", 0, false
	}
	var n int64
	for _, i := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return "", 0, false
		}
		n += v
	}
	return s[open+1 : closing], n, true
}

// machineBusy is the CPU time all processors spent busy, from /proc/stat: user, nice and system time, and
// interrupts (a tick spent in an interrupt, such as the loopback network's soft interrupts, is counted there
// and also in the system time of the process it interrupted; leaving them out makes "others" negative).
func machineBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var n int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
		x, _ := strconv.ParseInt(f[i], 10, 64)
		n += x
	}
	return n
}

func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// tail is the end of a log file, for errors.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "(no output)"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func (c config) scaleReport(samples map[string][]scaleRun, clk int64) {
	med := func(setup string, f func(scaleRun) float64) float64 {
		var xs []float64
		for _, r := range samples[setup] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	rps := func(s string) float64 { return med(s, func(r scaleRun) float64 { return r.rps }) }
	p99 := func(s string) float64 { return med(s, func(r scaleRun) float64 { return r.res.P99US / 1000 }) }
	// caught is the median catch-up in seconds, +Inf when the median round did not catch up.
	caught := func(s string) float64 {
		return med(s, func(r scaleRun) float64 {
			if !r.caughtOK {
				return math.Inf(1)
			}
			return r.caught.Seconds()
		})
	}
	caughtText := func(s string) string {
		if len(samples[s]) == 0 || samples[s][0].caught < 0 {
			return "n/a"
		}
		if v := caught(s); !math.IsInf(v, 1) {
			return fmt.Sprintf("%.2f s", v)
		}
		return fmt.Sprintf("not within %s", c.scaleLimit)
	}
	// µs of CPU per acknowledged event, per component; which components a setup involves decides what counts.
	perEvent := func(r scaleRun, n int64) float64 {
		if r.acked == 0 {
			return math.NaN()
		}
		return float64(n) * 1e6 / float64(clk) / float64(r.acked)
	}
	uses := map[string][3]bool{
		setupC2: {true, true, false}, setupOne: {true, true, true}, setupTwo: {true, true, true}, setupEmbedded: {true, false, false},
	}
	cpu := func(s string) (comp [3]float64, total float64) {
		u := uses[s]
		for i, f := range []func(ticks) int64{
			func(t ticks) int64 { return t.server }, func(t ticks) int64 { return t.postgres }, func(t ticks) int64 { return t.nats },
		} {
			comp[i] = med(s, func(r scaleRun) float64 { return perEvent(r, f(r.cpu)) })
		}
		total = med(s, func(r scaleRun) float64 {
			var n int64
			if u[0] {
				n += r.cpu.server
			}
			if u[1] {
				n += r.cpu.postgres
			}
			if u[2] {
				n += r.cpu.nats
			}
			return perEvent(r, n)
		})
		return comp, total
	}

	fmt.Printf("scale-out: new users (POST /users), %d connections (two instances: %d each, from two wrk at once), %s, median of %d rounds\n",
		c.conns, max(1, c.conns/2), c.duration, c.rounds)
	fmt.Printf("PostgreSQL %s, NATS JetStream %s; a fresh schema and namespace for every setup\n\n", redact(c.postgres), redact(c.nats))
	fmt.Printf("%-19s %10s %9s %9s %7s  %s\n", "setup", "req/s", "p50 ms", "p99 ms", "errors", "consumers caught up in")
	for _, s := range scaleSetups {
		fmt.Printf("%-19s %10.0f %9.2f %9.2f %7.0f  %s\n", s, rps(s),
			med(s, func(r scaleRun) float64 { return r.res.P50US / 1000 }), p99(s),
			med(s, func(r scaleRun) float64 { return float64(r.res.Errors) }), caughtText(s))
	}
	fmt.Printf("\nCPU per acknowledged event, µs (utime+stime from /proc, from the load's start to the consumers' catch-up)\n")
	fmt.Printf("%-19s %10s %10s %10s %10s   %8s %8s\n", "setup", "server", "postgres", "nats", "total", "wrk", "others")
	cell := func(v float64, used bool) string {
		if !used {
			return "-"
		}
		return fmt.Sprintf("%.0f", v)
	}
	ncpu := float64(max(1, cpus()))
	disturbed := 0.0
	for _, s := range scaleSetups {
		comp, total := cpu(s)
		u := uses[s]
		wrkUS := med(s, func(r scaleRun) float64 { return perEvent(r, int64(r.wrkCPU.Seconds()*float64(clk))) })
		othersUS := med(s, func(r scaleRun) float64 { return perEvent(r, r.others(clk)) })
		disturbed = math.Max(disturbed, med(s, func(r scaleRun) float64 {
			return float64(r.others(clk)) / float64(clk) / (r.elapsed.Seconds() * ncpu)
		}))
		fmt.Printf("%-19s %10s %10s %10s %10s   %8.0f %8.0f\n", s, cell(comp[0], u[0]), cell(comp[1], u[1]), cell(comp[2], u[2]),
			cell(total, true), wrkUS, othersUS)
	}
	fmt.Println("(server: C2-PG's own process, or userhook's; the idle NATS is not counted for C2-PG and embedded;")
	fmt.Println(" wrk: the load generators; others: every other process, the machine's busy time less the columns before)")
	if disturbed > 0.1 {
		fmt.Printf("WARNING: other processes used up to %.0f%% of the machine's CPU during a setup: every figure of this part is disturbed\n", 100*disturbed)
	}

	fmt.Println()
	fmt.Println("targets (medians; ratios of figures measured side by side in each round)")
	r1, r2 := rps(setupOne)/rps(setupC2), p99(setupOne)/p99(setupC2)
	fmt.Printf("  one instance    %5.1f%% of C2-PG req/s (>= 50%%): %s;  p99 %.2fx C2-PG's (<= 2x): %s\n",
		100*r1, met(r1 >= 0.5), r2, met(r2 <= 2))
	c1, c2 := caught(setupOne), caught(setupTwo)
	fmt.Printf("  caught up       one instance %s, two instances %s (<= 2 s): %s\n",
		caughtText(setupOne), caughtText(setupTwo), met(c1 <= 2 && c2 <= 2))
	r3 := rps(setupTwo) / rps(setupOne)
	fmt.Printf("  two instances   %.2fx one instance's req/s (>= 1x): %s\n", r3, met(r3 >= 1))
	one, oneTotal := cpu(setupOne)
	_, embTotal := cpu(setupEmbedded)
	fmt.Printf("  CPU per event   PostgreSQL + JetStream %.0f µs (userhook %.0f, PostgreSQL %.0f, NATS %.0f); embedded %.0f µs: printed\n",
		oneTotal, one[0], one[1], one[2], embTotal)
}
