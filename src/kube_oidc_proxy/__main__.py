from kube_oidc_proxy.cli import main

raise SystemExit(main())
