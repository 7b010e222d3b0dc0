// Command upstream is a minimal HTTPS stand-in for kube-apiserver, used only by the benchmarks: it answers
// every request with a small JSON body (like a GET of one object), and watches (/watch or ?watch=true) with
// a stream that stays open, so the proxy's cost is measured against a fast, constant baseline.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "TLS certificate")
	key := flag.String("key", "", "TLS key")
	flag.Parse()

	body := []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench","namespace":"default","resourceVersion":"1"}}`)
	mux := http.NewServeMux()
	mux.HandleFunc("/watch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;stream=watch")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			w.Header().Set("Content-Type", "application/json;stream=watch")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "%d\n", ln.Addr().(*net.TCPAddr).Port)
	// HTTP/1.1 and HTTP/2 (ALPN), like kube-apiserver: the proxy multiplexes watches over HTTP/2.
	srv := &http.Server{Handler: mux, IdleTimeout: 90 * time.Second}
	srv.TLSConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	log.Fatal(srv.ServeTLS(ln, *cert, *key))
}
