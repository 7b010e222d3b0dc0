// Command requestinfo is the tests' oracle for how kube-apiserver reads a request: it reads "METHOD URL"
// lines on stdin and prints one JSON object per line on stdout, computed by the code kube-apiserver runs,
// at the versions the end-to-end cluster pins (this module's go.mod):
//
//   - Go's HTTP server parses the request line (http.ReadRequest, as net/http's server does): when it
//     refuses the request (400 before any handler), "refused" holds its error and nothing else is set;
//   - k8s.io/apiserver's RequestInfoFactory, configured as kube-apiserver configures it, gives the request
//     info; an error from it (kube-apiserver answers 500) is in "error", next to the partial info;
//   - "requestURI" is what kube-apiserver's audit events record (req.URL.RequestURI());
//   - "longRunning" is kube-apiserver's own long-running check (k8s.io/kubernetes pkg/controlplane);
//   - "follow" is the pod-log option as kube-apiserver decodes the first "follow" parameter.
//
// A URL cannot hold a line break here; everything else is passed byte for byte.
package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/filters"
	"k8s.io/klog/v2"
)

type answer struct {
	Refused           string   `json:"refused,omitempty"`
	Error             string   `json:"error,omitempty"`
	IsResourceRequest bool     `json:"isResourceRequest"`
	Path              string   `json:"path"`
	Verb              string   `json:"verb"`
	APIPrefix         string   `json:"apiPrefix"`
	APIGroup          string   `json:"apiGroup"`
	APIVersion        string   `json:"apiVersion"`
	Namespace         string   `json:"namespace"`
	Resource          string   `json:"resource"`
	Subresource       string   `json:"subresource"`
	Name              string   `json:"name"`
	Parts             []string `json:"parts"`
	FieldSelector     string   `json:"fieldSelector"`
	LabelSelector     string   `json:"labelSelector"`
	RequestURI        string   `json:"requestURI"`
	LongRunning       bool     `json:"longRunning"`
	Follow            bool     `json:"follow"`
}

// As genericapiserver.NewRequestInfoResolver builds it for kube-apiserver (legacy prefix "/api").
var resolver = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// As k8s.io/kubernetes pkg/controlplane/apiserver/config.go sets genericConfig.LongRunningFunc.
var longRunning = filters.BasicLongRunningRequestCheck(
	sets.NewString("watch", "proxy"),
	sets.NewString("attach", "exec", "proxy", "log", "portforward"),
)

func read(method, url string) answer {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + url + " HTTP/1.1\r\nHost: x\r\n\r\n")))
	if err != nil {
		return answer{Refused: err.Error()}
	}
	info, err := resolver.NewRequestInfo(req)
	a := answer{
		IsResourceRequest: info.IsResourceRequest,
		Path:              info.Path,
		Verb:              info.Verb,
		APIPrefix:         info.APIPrefix,
		APIGroup:          info.APIGroup,
		APIVersion:        info.APIVersion,
		Namespace:         info.Namespace,
		Resource:          info.Resource,
		Subresource:       info.Subresource,
		Name:              info.Name,
		Parts:             info.Parts,
		FieldSelector:     info.FieldSelector,
		LabelSelector:     info.LabelSelector,
		RequestURI:        req.URL.RequestURI(),
		LongRunning:       longRunning(req, info),
	}
	if err != nil {
		a.Error = err.Error()
	}
	if values := req.URL.Query()["follow"]; len(values) > 0 {
		_ = runtime.Convert_Slice_string_To_bool(&values, &a.Follow, nil)
	}
	return a
}

func main() {
	klog.SetLogger(logr.Discard()) // kube-apiserver logs a query it cannot decode; not wanted here
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	encoder := json.NewEncoder(out)
	for in.Scan() {
		method, url, _ := strings.Cut(in.Text(), " ")
		if err := encoder.Encode(read(method, url)); err != nil {
			panic(err)
		}
		if err := out.Flush(); err != nil { // one answer per line asked: the reader waits for it
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
