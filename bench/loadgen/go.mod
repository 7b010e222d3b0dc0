module kube-oidc-proxy/bench/loadgen

go 1.22
