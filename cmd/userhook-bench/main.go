// Command userhook-bench is the load benchmark behind `make bench`: it starts the comparison servers C0, C1,
// C2 and C3 (transport.Ceiling; C2 and C3 on SQLite, c2sqlite.go) and the real userhook binary on loopback,
// drives each with wrk at the same concurrency, side by side in every round, and prints req/s, p50 and p99 with
// the ratios the performance targets are stated in, plus the projection lag under load and the replay rate
// against SQLite's raw ordered scan of the same events table. Its memory part (memory.go) drives
// --memory-users new users into userhook and reads its resident memory. Its scale-out part (scaleout.go)
// measures userhook on PostgreSQL + NATS JetStream, one instance and two, against C2-PG (c2pg.go) and beside
// the embedded default, with the consumers' catch-up and the CPU per event of userhook, PostgreSQL and NATS;
// it is skipped, with a message, when either server cannot be reached.
//
//	userhook-bench --bin bin/userhook [--rounds 3] [--duration 8s] [--conns 64] [--replay-users 100000]
//	               [--memory-users 1000000] [--only load|replay|memory|scaleout] [--postgres URL] [--nats URL]
//	               [--catchup-limit 120s]
//	userhook-bench ceiling --level 0|1|2|3 [--sqlite PATH | --postgres URL] [--addr HOST:PORT]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/transport"
)

const (
	secret = "bench-secret-0123456789abcdef0123456789"
	apiKey = "bench-key-0123456789abcdef0123"
)

var webhookKey = []byte("bench-webhook-key-0123456789abcd")

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		if err := ceiling(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "userhook-bench:", err)
		os.Exit(1)
	}
}

// ceiling serves C0, C1, C2 or C3 (levels 2 and 3, on the SQLite file of --sqlite) or C2-PG (level 2, on the
// PostgreSQL of --postgres) until it gets SIGTERM or SIGINT, then closes its store.
func ceiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	level := fs.Int("level", 0, "0 (C0), 1 (C1), 2 (C2 with --sqlite, C2-PG with --postgres) or 3 (C3, with --sqlite)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	pg := fs.String("postgres", "", "PostgreSQL URL of C2-PG (level 2)")
	lite := fs.String("sqlite", "", "SQLite file of C2 (level 2) or C3 (level 3), created when missing")
	_ = fs.Parse(args)
	handler := transport.Ceiling(*level, []byte(secret), apiKey, nil)
	if *level >= 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var h http.Handler
		var closeFn func()
		var err error
		switch {
		case *level > 3:
			err = fmt.Errorf("--level %d: 0 to 3", *level)
		case *lite != "" && *pg != "":
			err = errors.New("--sqlite or --postgres, not both")
		case *lite != "":
			h, closeFn, err = ceilingSQLite(ctx, *lite, *level)
		case *pg != "" && *level == 2:
			h, closeFn, err = ceilingPG(ctx, *pg)
		default:
			err = fmt.Errorf("--level %d needs --sqlite PATH (or, for C2-PG at level 2, --postgres URL)", *level)
		}
		cancel()
		if err != nil {
			return err
		}
		defer closeFn()
		handler = h
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-shut // the requests in flight are answered before the store closes
	return nil
}

type config struct {
	bin, self     string
	rounds        int
	duration      time.Duration
	conns         int
	replayUsers   int
	replayPerUser int
	replayProfile string
	work          string
	postgres      string        // the scale-out part's PostgreSQL server (a database URL)
	nats          string        // and its NATS JetStream server
	scaleLimit    time.Duration // how long the scale-out and memory parts wait for the consumers to catch up
	memoryUsers   int           // new users the memory part drives through POST /users
}

func run() error {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/userhook", "the userhook binary")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; every figure is the median over them")
	flag.DurationVar(&c.duration, "duration", 8*time.Second, "length of one wrk run")
	flag.IntVar(&c.conns, "conns", 64, "wrk connections")
	flag.IntVar(&c.replayUsers, "replay-users", 100000, "users in the replay store")
	flag.IntVar(&c.replayPerUser, "replay-events-per-user", 10, "events per user in the replay store")
	flag.IntVar(&c.memoryUsers, "memory-users", 1000000, "new users the memory part creates before it reads userhook's RSS")
	only := flag.String("only", "", "run one part only: load, replay, memory or scaleout")
	flag.StringVar(&c.replayProfile, "replay-cpuprofile", "", "write a CPU profile of the first replay to this file")
	flag.StringVar(&c.postgres, "postgres", os.Getenv("USERHOOK_BENCH_POSTGRES"),
		"PostgreSQL server of the scale-out part, a postgres:// URL (default $USERHOOK_BENCH_POSTGRES; the part is skipped without it)")
	flag.StringVar(&c.nats, "nats", os.Getenv("USERHOOK_BENCH_NATS"),
		"NATS JetStream server of the scale-out part, a nats:// URL (default $USERHOOK_BENCH_NATS; the part is skipped without it)")
	flag.DurationVar(&c.scaleLimit, "catchup-limit", 120*time.Second, "how long the scale-out and memory parts wait for the consumers to catch up after a load")
	flag.Parse()
	switch *only {
	case "", "load", "replay", "memory", "scaleout":
	default:
		return fmt.Errorf("--only %q: load, replay, memory or scaleout", *only)
	}
	part := func(name string) bool { return *only == "" || *only == name }
	load, replay, memory, scale := part("load"), part("replay"), part("memory"), part("scaleout")
	// An interrupt ends the run through its error paths, so that processes, schemas and streams are cleaned up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (make bench installs it: apt-get install -y wrk)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c.self = self
	if c.work, err = os.MkdirTemp("", "userhook-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	if err := os.WriteFile(filepath.Join(c.work, "users.lua"), []byte(luaUsers), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.work, "signed.lua"), []byte(luaSigned), 0o644); err != nil {
		return err
	}

	fmt.Printf("userhook-bench: %d rounds of %s per target, %d connections, wrk on loopback, %d CPUs\n\n",
		c.rounds, c.duration, c.conns, cpus())
	samples := map[string][]result{}
	var lags []time.Duration
	for round := 1; round <= c.rounds && load; round++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", round, c.rounds)
		rs, lag, err := c.round(ctx, round)
		if err != nil {
			return err
		}
		for k, v := range rs {
			samples[k] = append(samples[k], v)
		}
		lags = append(lags, lag)
	}
	var rep replayResult
	if replay {
		fmt.Fprintln(os.Stderr, "replay")
		if rep, err = c.replay(ctx); err != nil {
			return err
		}
	}
	if load || replay {
		report(c, samples, lags, rep, load, replay)
	}
	if memory {
		fmt.Fprintln(os.Stderr, "memory")
		m, err := c.memory(ctx)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		if load || replay {
			fmt.Println()
		}
		c.memoryReport(m)
	}
	if scale {
		if load || replay || memory {
			fmt.Println()
		}
		return c.scaleout(ctx)
	}
	return nil
}

// result is one wrk run.
type result struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Errors     int64   `json:"errors"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	// StatusErrors are the responses with a status of 400 or more (wrk counts them in Requests too).
	StatusErrors int64 `json:"status_errors"`
	// cpu is wrk's own CPU time.
	cpu time.Duration
}

func (r result) rps() float64 { return float64(r.Requests) / (float64(r.DurationUS) / 1e6) }

func (c config) wrk(ctx context.Context, url, script string, env ...string) (result, error) {
	return c.wrkRun(ctx, url, script, c.conns, env...)
}

// wrkRun runs wrk with conns connections for c.duration; ending ctx kills it.
func (c config) wrkRun(ctx context.Context, url, script string, conns int, env ...string) (result, error) {
	// wrk takes whole numbers of a unit only ("1m30s" and "1.5s" are refused): whole seconds.
	secs := max(1, int((c.duration + time.Second/2).Seconds()))
	cmd := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "--timeout", "5s",
		"-s", filepath.Join(c.work, script), url)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return result{}, err
			}
			r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			return r, nil
		}
	}
	return result{}, fmt.Errorf("wrk printed no summary: %s", out.String())
}

type proc struct {
	cmd *exec.Cmd
	url string
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(bin string, args, env []string) (*proc, error) {
	return startTo(bin, args, env, io.Discard)
}

// startTo starts bin with its output written to log and waits until it listens.
func startTo(bin string, args, env []string, log io.Writer) (*proc, error) {
	addr := freeAddr()
	cmd := exec.Command(bin, append(args, "--addr", addr)...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, url: "http://" + addr}
	cmd.Stderr = log
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return p, nil
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s did not listen on %s", bin, addr)
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func token() string {
	tok, err := transport.SignToken(transport.TokenRequest{Secret: []byte(secret), Subject: "bench", TTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	return tok
}

// The ceilings of the load part, in the order each round runs them, by level.
var ceilings = []string{"C0", "C1", "C2", "C3"}

// round runs every target once, side by side, and measures the projection lag under the new-users load.
func (c config) round(ctx context.Context, n int) (map[string]result, time.Duration, error) {
	out := map[string]result{}
	env := []string{"TOKEN=" + token(), "KEY=" + apiKey}
	for level, name := range ceilings {
		r, err := c.ceilingRun(ctx, level, n, env)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = r
	}

	dir := filepath.Join(c.work, fmt.Sprintf("round-%d", n))
	defer os.RemoveAll(dir)
	uh, err := start(c.bin, []string{"serve"}, userhookEnv(filepath.Join(dir, "userhook.db")))
	if err != nil {
		return nil, 0, err
	}
	defer uh.stop()

	// New users, with the lag sampler beside wrk.
	lctx, cancel := context.WithCancel(ctx)
	lagCh := make(chan []time.Duration, 1)
	go func() { lagCh <- sampleLag(lctx, uh.url, n) }()
	r, err := c.wrk(ctx, uh.url, "users.lua", append(env, fmt.Sprintf("PREFIX=new-%d", n))...)
	cancel()
	lagSamples := <-lagCh
	if err != nil {
		return nil, 0, err
	}
	out["new users"] = r

	// Repeat logins: the same 2 x 2000 users, first created (and cached) by a warm-up run.
	repeatEnv := append(env, fmt.Sprintf("PREFIX=rep-%d", n), "REPEAT=2000")
	warm := c
	warm.duration = 3 * time.Second
	if _, err := warm.wrk(ctx, uh.url, "users.lua", repeatEnv...); err != nil {
		return nil, 0, err
	}
	if r, err = c.wrk(ctx, uh.url, "users.lua", repeatEnv...); err != nil {
		return nil, 0, err
	}
	out["repeat logins"] = r

	// Signed CloudEvents for distinct users, signed just now so every timestamp is in the 5-minute window.
	signed := filepath.Join(c.work, "signed")
	if err := writeSigned(signed, n, 2, 250000); err != nil {
		return nil, 0, err
	}
	if r, err = c.wrk(ctx, uh.url, "signed.lua", "SIGNED="+signed); err != nil {
		return nil, 0, err
	}
	out["cloudevents"] = r
	return out, percentile(lagSamples, 0.99), nil
}

// ceilingRun measures the ceiling of a level under the new-users load; C2 and C3 on a fresh SQLite file,
// removed afterwards.
func (c config) ceilingRun(ctx context.Context, level, round int, env []string) (result, error) {
	args := []string{"ceiling", "--level", strconv.Itoa(level)}
	dir := filepath.Join(c.work, fmt.Sprintf("c%d-%d", level, round))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	if level >= 2 {
		args = append(args, "--sqlite", filepath.Join(dir, "ceiling.db"))
	}
	logf, err := os.Create(filepath.Join(dir, "ceiling.log"))
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	p, err := startTo(c.self, args, nil, logf)
	if err != nil {
		return result{}, fmt.Errorf("%w: %s", err, tail(logf.Name()))
	}
	r, err := c.wrk(ctx, p.url, "users.lua", append(env, fmt.Sprintf("PREFIX=c%d-%d", level, round))...)
	p.stop()
	if err != nil {
		return result{}, err
	}
	if r.StatusErrors > 0 {
		return result{}, fmt.Errorf("%d of %d answers were errors: %s", r.StatusErrors, r.Requests, tail(logf.Name()))
	}
	return r, nil
}

// sampleLag posts a user every 20 ms and measures how long after its 200 the read model shows it (a read with
// minPosition, woken by the projection).
func sampleLag(ctx context.Context, base string, round int) []time.Duration {
	client := &http.Client{Timeout: 10 * time.Second}
	tok := token()
	var out []time.Duration
	for i := 0; ctx.Err() == nil; i++ {
		time.Sleep(20 * time.Millisecond)
		id := fmt.Sprintf("auth0|lag-%d-%d", round, i)
		body := fmt.Sprintf(`{"detail":{"data":{"user_name":"lag%d-%d@example.com","user_id":"%s"}}}`, round, i, id)
		req, _ := http.NewRequest(http.MethodPost, base+"/users", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-API-Key", apiKey)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		acked := time.Now()
		pos := resp.Header.Get("X-Event-Position")
		if resp.StatusCode != http.StatusOK || pos == "" {
			continue
		}
		get, _ := http.NewRequest(http.MethodGet, base+"/users/"+strings.ReplaceAll(id, "|", "%7C")+"?minPosition="+pos, nil)
		get.Header.Set("Authorization", "Bearer "+tok)
		get.Header.Set("X-API-Key", apiKey)
		resp, err = client.Do(get)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			out = append(out, time.Since(acked))
		}
	}
	return out
}

// writeSigned writes per-thread files of Standard Webhooks signed CloudEvents, each a new user.
func writeSigned(path string, round, threads, perThread int) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for t := 1; t <= threads; t++ {
		f, err := os.Create(path + "." + strconv.Itoa(t))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for i := 0; i < perThread; i++ {
			id := fmt.Sprintf("ce-%d-%d-%d", round, t, i)
			body := fmt.Sprintf(`{"specversion":"1.0","id":"%s","source":"https://idp.example.com","type":"user.created","subject":"user-%s","time":"2024-01-01T00:00:00Z","datacontenttype":"application/json","data":{"email":"%s@example.com","name":"Bench User","plan":"pro"}}`, id, id, id)
			mac := hmac.New(sha256.New, webhookKey)
			mac.Write([]byte("msg_" + id + "." + ts + "." + body))
			fmt.Fprintf(w, "msg_%s\t%s\tv1,%s\t%s\n", id, ts, base64.StdEncoding.EncodeToString(mac.Sum(nil)), body)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

type replayResult struct {
	events   int64
	scanRate []float64
	rate     []float64
	rssKB    []int64
}

// replay builds a store of replayUsers users with replayPerUser events each, then measures, side by side in
// each round, SQLite's raw ordered scan of the events table and `userhook replay` of the same file.
func (c config) replay(ctx context.Context) (replayResult, error) {
	path := filepath.Join(c.work, "replay", "userhook.db")
	defer os.RemoveAll(filepath.Dir(path))
	n, err := buildReplayStore(ctx, path, c.replayUsers, c.replayPerUser)
	if err != nil {
		return replayResult{}, err
	}
	res := replayResult{events: n}
	for round := 0; round < c.rounds; round++ {
		rate, err := rawScan(path)
		if err != nil {
			return res, err
		}
		res.scanRate = append(res.scanRate, rate)
		args := []string{"replay", "--database", path}
		if c.replayProfile != "" && round == 0 {
			args = append(args, "--cpuprofile", c.replayProfile)
		}
		cmd := exec.CommandContext(ctx, c.bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, io.Discard
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return res, fmt.Errorf("replay: %v: %s", err, out.String())
		}
		elapsed := time.Since(start)
		res.rate = append(res.rate, float64(n)/elapsed.Seconds())
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.rssKB = append(res.rssKB, ru.Maxrss)
		}
	}
	return res, nil
}

func buildReplayStore(ctx context.Context, path string, users, perUser int) (int64, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	st, err := sqlite.New(ctx, db)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	work := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				events := make([]eventstore.Event, perUser)
				for v := 0; v < perUser; v++ {
					var de aggregate.Event
					switch {
					case v == 0:
						de = aggregate.UserRegistered{Email: fmt.Sprintf("u%d@example.com", u), Name: "User", Profile: map[string]any{"plan": "free"}}
					case v%2 == 1:
						de = aggregate.UserEmailChanged{Email: fmt.Sprintf("u%d-%d@example.com", u, v)}
					default:
						name := fmt.Sprintf("User %d", v)
						de = aggregate.UserProfileUpdated{Name: &name, Profile: map[string]any{"plan": "pro", "seats": v}}
					}
					data, _ := aggregate.Encode(de)
					events[v] = eventstore.Event{ID: fmt.Sprintf("r-%d-%d", u, v), StreamType: aggregate.StreamType,
						Type: de.EventType(), Data: data, OccurredAt: at.Add(time.Duration(v) * time.Minute)}
				}
				if _, err := st.Append(ctx, fmt.Sprintf("auth0|u%07d", u), 0, events...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
feed:
	for u := 0; u < users; u++ {
		select {
		case work <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return st.LastPosition(ctx)
}

// rawScan reads every column of every event in position order, decoding nothing: SQLite's ceiling.
func rawScan(path string) (float64, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=true")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	start := time.Now()
	rows, err := db.Query(`SELECT position, event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at FROM events ORDER BY position`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	var pos, version, occurred, recorded int64
	var id, stream, streamType, typ, meta sql.RawBytes
	var data sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&pos, &id, &stream, &streamType, &version, &typ, &data, &meta, &occurred, &recorded); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func cpus() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func report(c config, samples map[string][]result, lags []time.Duration, rep replayResult, load, replay bool) {
	med := func(name string, f func(result) float64) float64 {
		var xs []float64
		for _, r := range samples[name] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	rps := func(n string) float64 { return med(n, result.rps) }
	p50 := func(n string) float64 { return med(n, func(r result) float64 { return r.P50US / 1000 }) }
	p99 := func(n string) float64 { return med(n, func(r result) float64 { return r.P99US / 1000 }) }
	errs := func(n string) float64 { return med(n, func(r result) float64 { return float64(r.Errors) }) }

	if !load {
		scan, rate := median(rep.scanRate), median(rep.rate)
		var rss []float64
		for _, kb := range rep.rssKB {
			rss = append(rss, float64(kb)/1024)
		}
		fmt.Printf("replay of %d events (%d users): %.0f events/s; SQLite raw ordered scan: %.0f rows/s; peak RSS %.0f MB\n",
			rep.events, c.replayUsers, rate, scan, median(rss))
		replayTarget(rate, scan, median(rss))
		return
	}
	fmt.Printf("%-15s %10s %9s %9s %7s\n", "target", "req/s", "p50 ms", "p99 ms", "errors")
	for _, n := range append(ceilings, "new users", "repeat logins", "cloudevents") {
		fmt.Printf("%-15s %10.0f %9.2f %9.2f %7.0f\n", n, rps(n), p50(n), p99(n), errs(n))
	}
	var lagMS []float64
	for _, l := range lags {
		lagMS = append(lagMS, float64(l.Microseconds())/1000)
	}
	scan, rate := median(rep.scanRate), median(rep.rate)
	var rss []float64
	for _, kb := range rep.rssKB {
		rss = append(rss, float64(kb)/1024)
	}
	fmt.Printf("\nprojection lag p99 under the new-users load: %.1f ms (median of %d rounds)\n", median(lagMS), len(lags))
	if replay {
		fmt.Printf("replay of %d events (%d users): %.0f events/s; SQLite raw ordered scan: %.0f rows/s; peak RSS %.0f MB\n",
			rep.events, c.replayUsers, rate, scan, median(rss))
	}
	fmt.Println()
	fmt.Println("targets (medians; ratios of figures measured side by side in each round)")
	r1, r2 := rps("new users")/rps("C3"), p99("new users")/p99("C3")
	fmt.Printf("  new users       %5.1f%% of C3 req/s (>= 80%%): %s;  p99 %.2fx C3's (<= 2x): %s\n", 100*r1, met(r1 >= 0.8), r2, met(r2 <= 2))
	r3 := rps("cloudevents") / rps("C3")
	fmt.Printf("  cloudevents     %5.1f%% of C3 req/s (>= 70%%): %s\n", 100*r3, met(r3 >= 0.7))
	r4 := rps("repeat logins") / rps("C1")
	fmt.Printf("  repeat logins   %5.1f%% of C1 req/s (>= 95%%): %s\n", 100*r4, met(r4 >= 0.95))
	fmt.Printf("  projection lag  p99 %.1f ms under the new-users load (<= 50 ms): %s\n", median(lagMS), met(median(lagMS) <= 50))
	if replay {
		replayTarget(rate, scan, median(rss))
	}
	fmt.Printf("  durability      synchronous=FULL in WAL mode: every 200 is fsync'd before it is sent\n")
}

// replayTarget prints the replay's target line.
func replayTarget(rate, scan, rssMB float64) {
	fmt.Printf("  replay          %5.1f%% of the raw scan rate (>= 50%%): %s;  peak RSS %.0f MB (<= 150 MB): %s\n",
		100*rate/scan, met(rate/scan >= 0.5), rssMB, met(rssMB <= 150))
}
