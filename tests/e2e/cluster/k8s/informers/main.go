// Command informers is a client-go controller in miniature, for the end-to-end tests: with one HTTP client
// (as controller-runtime and kubectl share theirs), it discovers the namespaced resources that can be
// listed and watched, starts a dynamic informer for each (client-go's defaults: a streaming watch list,
// then a watch), and reports how many TCP connections it dialled and which HTTP versions answered.
//
// Protocol, one JSON object per line on stdout:
//
//   - after discovery: {"resources": [...]}; then it waits for a line on stdin before starting the informers,
//     so a test can look at the proxy between the two;
//   - when every informer has synced (or -timeout passed): {"informers": n, "synced": bool, "dials": n,
//     "protocols": {"HTTP/2.0": n, ...}}; the watches stay open until stdin is closed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the kubeconfig of the user")
	namespace := flag.String("namespace", "default", "where the informers list and watch")
	limit := flag.Int("max", 30, "at most this many resources (sorted by group and name)")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for the informers to sync")
	flag.Parse()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	check(err)
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	config.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		dials.Add(1)
		return dialer.DialContext(ctx, network, address)
	}
	var mu sync.Mutex
	protocols := map[string]int{}
	config.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			response, err := next.RoundTrip(r)
			if response != nil {
				mu.Lock()
				protocols[response.Proto]++
				mu.Unlock()
			}
			return response, err
		})
	})
	client, err := rest.HTTPClientFor(config)
	check(err)

	disc, err := discovery.NewDiscoveryClientForConfigAndClient(config, client)
	check(err)
	lists, err := disc.ServerPreferredNamespacedResources()
	check(err)
	lists = discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"list", "watch"}}, lists)
	var resources []schema.GroupVersionResource
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		check(err)
		for _, r := range list.APIResources {
			if !strings.Contains(r.Name, "/") {
				resources = append(resources, gv.WithResource(r.Name))
			}
		}
	}
	sort.Slice(resources, func(i, j int) bool { return resources[i].String() < resources[j].String() })
	if len(resources) > *limit {
		resources = resources[:*limit]
	}
	names := make([]string, len(resources))
	for i, r := range resources {
		names[i] = r.String()
	}
	emit(map[string]any{"resources": names})

	stdin := bufio.NewReader(os.Stdin)
	_, err = stdin.ReadString('\n')
	check(err)

	dyn, err := dynamic.NewForConfigAndClient(config, client)
	check(err)
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, *namespace, nil)
	var synced []cache.InformerSynced
	for _, r := range resources {
		synced = append(synced, factory.ForResource(r).Informer().HasSynced)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	ok := cache.WaitForCacheSync(ctx.Done(), synced...)
	cancel()
	mu.Lock()
	seen := map[string]int{}
	for k, v := range protocols {
		seen[k] = v
	}
	mu.Unlock()
	emit(map[string]any{"informers": len(synced), "synced": ok, "dials": dials.Load(), "protocols": seen})

	_, _ = stdin.ReadString('\n') // EOF: the test is done
	close(stop)
	factory.Shutdown()
}

func emit(v any) {
	line, err := json.Marshal(v)
	check(err)
	fmt.Println(string(line))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
