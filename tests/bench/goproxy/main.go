// Command benchgo: the compiled floor and the load generator of the router benchmark.
//
//	benchgo proxy -listen 127.0.0.1:P -upstream http://127.0.0.1:N
//	benchgo load -url URL -c CONNS -d SECONDS -body FILE -token T
//
// "proxy" is net/http/httputil.ReverseProxy and nothing else (streams flushed at once): the
// lower bound any reverse proxy pays on this machine. "load" keeps CONNS keep-alive
// connections busy for SECONDS and prints one JSON line (the same fields wrk's summary
// gives), so Python client overhead never caps the figures. Standard library only.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: benchgo proxy|load ...")
	}
	switch os.Args[1] {
	case "proxy":
		proxy(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func proxy(args []string) {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := fs.String("upstream", "", "upstream base URL")
	procs := fs.Int("procs", 1, "GOMAXPROCS (1: one core, like the single-process Python targets)")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(*procs)
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // flush every write: streams pass through as they come
	rp.Transport = &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, DisableCompression: true}
	log.Fatal(http.ListenAndServe(*listen, rp))
}

type summary struct {
	Requests   int     `json:"requests"`
	DurationUs int64   `json:"duration_us"`
	Errors     int     `json:"errors"`
	Non2xx     int     `json:"non2xx"`
	P50Us      float64 `json:"p50_us"`
	P90Us      float64 `json:"p90_us"`
	P99Us      float64 `json:"p99_us"`
	MeanUs     float64 `json:"mean_us"`
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("url", "", "URL to POST to")
	conns := fs.Int("c", 1, "concurrent keep-alive connections")
	seconds := fs.Float64("d", 1, "duration in seconds")
	bodyFile := fs.String("body", "", "file holding the request body")
	token := fs.String("token", "", "bearer token")
	procs := fs.Int("procs", 1, "GOMAXPROCS (1: leave the other core to the target)")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(*procs)
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns,
			DisableCompression: true,
		},
	}
	var mu sync.Mutex
	var lat []float64
	errs, non2xx := 0, 0
	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			e, n := 0, 0
			for time.Now().Before(end) {
				t0 := time.Now()
				req, _ := http.NewRequest("POST", *target, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+*token)
				resp, err := client.Do(req)
				if err != nil {
					e++
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					e++
					continue
				}
				if resp.StatusCode < 200 || resp.StatusCode > 299 {
					n++
				}
				mine = append(mine, float64(time.Since(t0).Microseconds()))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += e
			non2xx += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Float64s(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(q / 100 * float64(len(lat)-1))
		return lat[i]
	}
	sum := 0.0
	for _, x := range lat {
		sum += x
	}
	mean := 0.0
	if len(lat) > 0 {
		mean = sum / float64(len(lat))
	}
	out, _ := json.Marshal(summary{
		Requests: len(lat), DurationUs: elapsed.Microseconds(), Errors: errs, Non2xx: non2xx,
		P50Us: pct(50), P90Us: pct(90), P99Us: pct(99), MeanUs: mean,
	})
	fmt.Println(string(out))
}
