"""Browser login on the proxy's own port (``--login-client-id``): the OIDC authorization-code flow with PKCE,
the id_token verified by the same authenticator as API requests, and a page with a kubeconfig whose user runs
an exec credential plugin.

One idea per module: ``pending`` (a login between /login and the callback), ``sealed`` (that login sealed for
the browser to carry, so any worker or replica can take the callback), ``cookies`` (one per login, named after
its state), ``spent`` (one use per state), ``ratelimit`` (per client address), ``hosts`` (the Host header's
strict syntax), ``kubeconfig`` (rendering, the proxy's CA), ``whoami`` (what the proxy will send as
Impersonate-*), ``pages`` (Jinja2 templates), ``responses`` (security headers), ``routes`` (paths, methods,
query parameters) and ``handler`` (the flow). Nothing here imports the server: the exchange hands a
``LoginRequest`` in and writes the ``LoginResponse`` it gets back.
"""
