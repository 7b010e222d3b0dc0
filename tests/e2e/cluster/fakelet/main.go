// Command fakelet is a kubelet stand-in for the end-to-end tests: it serves the kubelet's streaming API
// (exec, attach, port-forward) with the upstream server code that real kubelets and CRI runtimes use
// (k8s.io/cri-streaming), plus container logs, for pods that exist only as API objects.
//
//   - exec runs the command as a local process in the container's working directory
//     (<root>/<namespace>/<pod>/<container>): real exit codes, real stdin, and `tar` for `kubectl cp`;
//   - attach is the container's "main process": it prints a banner, then echoes stdin to stdout;
//   - port-forward connects to 127.0.0.1:<port> (tests run an echo server there);
//   - containerLogs serves the file "log" in the container's directory, following it with ?follow=true.
//
// It prints the port it listens on, then serves HTTPS (HTTP/1.1 only: upgrades need it) until killed.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const (
	idleTimeout           = 4 * time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

type runtime struct{ root string }

func (r runtime) dir(pod, container string) string {
	d := filepath.Join(r.root, pod, container)
	if err := os.MkdirAll(d, 0o755); err != nil {
		log.Printf("mkdir %s: %v", d, err)
	}
	return d
}

// ExecInContainer runs the command locally; its exit code goes back to kubectl.
func (r runtime) ExecInContainer(ctx context.Context, pod, _, container string, cmd []string, in io.Reader,
	out, errOut io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if len(cmd) == 0 {
		return fmt.Errorf("no command")
	}
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Dir = r.dir(pod, container)
	c.Stdin, c.Stdout, c.Stderr = in, out, errOut
	if tty {
		c.Stderr = out
	}
	err := c.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		// the streaming server reports an exit code only for k8s.io/utils/exec's ExitError
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// AttachContainer plays the container's main process: a banner, then stdin echoed to stdout.
func (r runtime) AttachContainer(ctx context.Context, pod, _, container string, in io.Reader,
	out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	fmt.Fprintf(out, "attached to %s/%s\n", pod, container)
	if in == nil {
		<-ctx.Done()
		return nil
	}
	_, err := io.Copy(out, in)
	return err
}

// PortForward connects the stream to 127.0.0.1:<port>.
func (r runtime) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stream)
		conn.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(stream, conn)
	return err
}

func (r runtime) logs(w http.ResponseWriter, req *http.Request) {
	path := filepath.Join(r.dir(req.PathValue("ns")+"/"+req.PathValue("pod"), req.PathValue("c")), "log")
	f, err := os.Open(path)
	if err != nil {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	flusher := w.(http.Flusher)
	follow := req.URL.Query().Get("follow") == "true"
	reader := bufio.NewReader(f)
	for {
		line, err := reader.ReadBytes('\n')
		if len(line) > 0 {
			w.Write(line)
			flusher.Flush()
		}
		if err == io.EOF {
			if !follow {
				return
			}
			select {
			case <-req.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		} else if err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "TLS certificate")
	key := flag.String("key", "", "TLS key")
	root := flag.String("root", "", "directory holding the containers' working directories")
	flag.Parse()
	r := runtime{root: *root}

	mux := http.NewServeMux() // no method in the patterns: WebSocket upgrades are GET, SPDY ones POST
	mux.HandleFunc("/exec/{ns}/{pod}/{c}", func(w http.ResponseWriter, req *http.Request) {
		opts, err := remotecommand.NewOptions(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeExec(w, req, r, req.PathValue("ns")+"/"+req.PathValue("pod"), "", req.PathValue("c"),
			req.URL.Query()["command"], opts, idleTimeout, streamCreationTimeout,
			remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/attach/{ns}/{pod}/{c}", func(w http.ResponseWriter, req *http.Request) {
		opts, err := remotecommand.NewOptions(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeAttach(w, req, r, req.PathValue("ns")+"/"+req.PathValue("pod"), "", req.PathValue("c"),
			opts, idleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/portForward/{ns}/{pod}", func(w http.ResponseWriter, req *http.Request) {
		opts, err := portforward.NewV4Options(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, req, r, req.PathValue("ns")+"/"+req.PathValue("pod"), "", opts,
			idleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
	})
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{c}", r.logs)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{
		Handler:      mux,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
	}
	log.Fatal(srv.ServeTLS(ln, *cert, *key))
}
