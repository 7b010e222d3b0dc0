// Command loadgen drives the benchmarks that wrk cannot: a fixed request rate with latency percentiles
// (open loop, measured from the scheduled send time so a stall is not hidden), or every request's latency
// on a timeline; first-request cost of fresh tokens; and thousands of idle watches held open at once,
// over HTTP/1.1 (one connection each) or over HTTP/2 (h2watches: -conns connections, the watches spread
// evenly over them as streams). HTTP/1.1 over TLS otherwise. Results are one JSON object on stdout.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

func client(caFile string, conns int) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost"},
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
		DisableCompression:  true,
	}}
}

func get(c *http.Client, url, token string) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i].Microseconds())
}

func summary(lat []time.Duration, errors int) map[string]any {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return map[string]any{
		"count": len(lat), "errors": errors,
		"p50_us": percentile(lat, 0.50), "p90_us": percentile(lat, 0.90),
		"p99_us": percentile(lat, 0.99), "max_us": percentile(lat, 1.0),
	}
}

func rate(c *http.Client, url, token string, perSecond int, duration, warmup time.Duration) map[string]any {
	if warmup > 0 {
		rate(c, url, token, perSecond, warmup, 0) // open and warm the connections; not measured
	}
	var mu sync.Mutex
	var lat []time.Duration
	errors := 0
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if scheduled.Sub(start) >= duration {
			break
		}
		time.Sleep(time.Until(scheduled))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := get(c, url, token)
			took := time.Since(scheduled)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errors++
				return
			}
			lat = append(lat, took)
		}()
	}
	wg.Wait()
	return summary(lat, errors)
}

// timeline is rate without the summary: every request's scheduled send time (unix microseconds) and
// latency (microseconds, measured from that time), so a caller can cut the run into windows around an
// event it timed itself (an audit log rotation).
func timeline(c *http.Client, url, token string, perSecond int, duration, warmup time.Duration) map[string]any {
	if warmup > 0 {
		rate(c, url, token, perSecond, warmup, 0)
	}
	var mu sync.Mutex
	samples := [][2]int64{}
	errors := 0
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if scheduled.Sub(start) >= duration {
			break
		}
		time.Sleep(time.Until(scheduled))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := get(c, url, token)
			took := time.Since(scheduled)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errors++
				return
			}
			samples = append(samples, [2]int64{scheduled.UnixMicro(), took.Microseconds()})
		}()
	}
	wg.Wait()
	return map[string]any{"samples": samples, "errors": errors}
}

// overload is rate for offered loads past what the server can do: every request is sent at its scheduled
// time whatever the answers, over at most maxConns connections (a client population), and answers are
// told apart: 200 (goodput, with its latency from the scheduled time), 429/503 (shed, with theirs), and
// anything else or no answer within the timeout (errors).
func overload(c *http.Client, url, token string, perSecond int, duration, warmup time.Duration) map[string]any {
	if warmup > 0 {
		overload(c, url, token, perSecond, warmup, 0) // the connections this load opens, opened; not measured
	}
	var mu sync.Mutex
	var ok, shed []time.Duration
	errors := 0
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	var wg sync.WaitGroup
	sent := 0
	for i := 0; ; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if scheduled.Sub(start) >= duration {
			break
		}
		time.Sleep(time.Until(scheduled))
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			status := 0
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			took := time.Since(scheduled)
			mu.Lock()
			defer mu.Unlock()
			switch status {
			case 200:
				ok = append(ok, took)
			case 429, 503:
				shed = append(shed, took)
			default:
				errors++
			}
		}()
	}
	sending := time.Since(start)
	wg.Wait()
	return map[string]any{
		"offered_rps": float64(sent) / sending.Seconds(), "seconds": time.Since(start).Seconds(),
		"ok": summary(ok, 0), "shed": summary(shed, 0), "errors": errors,
	}
}

func tokens(c *http.Client, url, tokenFile string) map[string]any {
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	all := strings.Fields(string(data))
	measure := func(pick func(i int) string) []time.Duration {
		var lat []time.Duration
		for i := range all {
			t := time.Now()
			if err := get(c, url, pick(i)); err != nil {
				log.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		return lat
	}
	get(c, url, all[0]) // warm the connection and cache the first token
	same := summary(measure(func(int) string { return all[0] }), 0)
	fresh := summary(measure(func(i int) string { return all[i] }), 0)
	return map[string]any{"cached": same, "fresh": fresh}
}

func watches(c *http.Client, url, token string, n int) map[string]any {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bodies []io.ReadCloser
	errors := 0
	sem := make(chan struct{}, 200) // open at most 200 at a time: a realistic ramp, not a SYN flood
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.StatusCode != 200 {
				errors++
				return
			}
			bodies = append(bodies, resp.Body)
		}()
	}
	wg.Wait()
	fmt.Printf("{\"open\": %d, \"errors\": %d, \"seconds\": %.2f}\n", len(bodies), errors, time.Since(start).Seconds())
	os.Stdout.Sync()
	bufio.NewReader(os.Stdin).ReadString('\n') // hold the watches until told to let go
	for _, b := range bodies {
		b.Close()
	}
	return nil
}

// h2watches holds n idle watches as HTTP/2 streams over conns connections, n/conns streams each: one
// transport per connection (a transport opens a second connection only past the server's stream limit,
// which n/conns must not exceed). Reports the distinct connections the streams used.
func h2watches(caFile, url, token string, n, conns int) {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bodies []io.ReadCloser
	used := map[string]bool{}
	errors := 0
	sem := make(chan struct{}, 200)
	open := func(c *http.Client) {
		defer wg.Done()
		defer func() { <-sem }()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		var local string
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			local = info.Conn.LocalAddr().String()
		}}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := c.Do(req)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			if err == nil {
				resp.Body.Close()
			}
			errors++
			return
		}
		used[local] = true
		bodies = append(bodies, resp.Body)
	}
	clients := make([]*http.Client, conns)
	for i := range clients {
		clients[i] = client(caFile, 1)
		t := clients[i].Transport.(*http.Transport)
		t.TLSNextProto = nil
		t.ForceAttemptHTTP2 = true
		wg.Add(1) // the first stream of each connection alone: its dial is not raced
		sem <- struct{}{}
		open(clients[i])
	}
	for i := conns; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go open(clients[i%conns])
	}
	wg.Wait()
	fmt.Printf("{\"open\": %d, \"errors\": %d, \"connections\": %d, \"seconds\": %.2f}\n",
		len(bodies), errors, len(used), time.Since(start).Seconds())
	os.Stdout.Sync()
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, b := range bodies {
		b.Close()
	}
}

func main() {
	mode := flag.String("mode", "rate", "rate | timeline | overload | tokens | watches | h2watches")
	url := flag.String("url", "", "target URL")
	ca := flag.String("ca", "", "CA file")
	token := flag.String("token", "", "bearer token")
	tokenFile := flag.String("token-file", "", "file of tokens, one per line (tokens mode)")
	perSecond := flag.Int("rate", 500, "requests per second (rate mode)")
	duration := flag.Duration("duration", 10*time.Second, "how long (rate mode)")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured run at the same rate first (rate mode)")
	n := flag.Int("n", 10000, "watches to open (watches mode)")
	maxConns := flag.Int("max-conns", 1000, "connections at most (overload mode)")
	conns := flag.Int("conns", 100, "HTTP/2 connections the watches share (h2watches mode)")
	timeout := flag.Duration("timeout", 30*time.Second, "a request unanswered for this long is an error (overload mode)")
	flag.Parse()
	var out map[string]any
	switch *mode {
	case "rate":
		out = rate(client(*ca, 256), *url, *token, *perSecond, *duration, *warmup)
	case "timeline":
		out = timeline(client(*ca, 256), *url, *token, *perSecond, *duration, *warmup)
	case "overload":
		c := client(*ca, *maxConns)
		c.Timeout = *timeout
		c.Transport.(*http.Transport).MaxConnsPerHost = *maxConns
		out = overload(c, *url, *token, *perSecond, *duration, *warmup)
	case "tokens":
		out = tokens(client(*ca, 1), *url, *tokenFile)
	case "watches":
		watches(client(*ca, *n), *url, *token, *n)
		return
	case "h2watches":
		h2watches(*ca, *url, *token, *n, *conns)
		return
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
