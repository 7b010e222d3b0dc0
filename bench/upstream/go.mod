module kube-oidc-proxy/bench/upstream

go 1.22
