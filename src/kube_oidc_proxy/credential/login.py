"""The browser login: authorization code with PKCE (S256), ``state`` and ``nonce``, redirected back to the
loopback receiver; the code is exchanged at the token endpoint and the id_token's ``nonce`` checked (a
token minted for another login, replayed into this one, carries another nonce).

The browser is started with ``webbrowser`` (which honours ``$BROWSER``) in a daemon thread: some launchers
wait for the browser to exit, and the receiver must keep answering meanwhile.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import ssl
import sys
import threading
import webbrowser
from collections.abc import Callable
from typing import Final

from kube_oidc_proxy import oidcclient
from kube_oidc_proxy.credential import expiry
from kube_oidc_proxy.credential.errors import CredentialError
from kube_oidc_proxy.credential.loopback import Loopback

LOGIN_TIMEOUT_SECONDS: Final = 300.0


async def browser_login(
    provider: oidcclient.ProviderMetadata,
    client: oidcclient.Client,
    ssl_context: ssl.SSLContext,
    *,
    scopes: tuple[str, ...],
    listen: tuple[str, int],
    open_browser: bool,
    say: Callable[[str], None],
    timeout: float = LOGIN_TIMEOUT_SECONDS,
) -> oidcclient.Tokens:
    state, nonce, pkce = oidcclient.random_token(), oidcclient.random_token(), oidcclient.new_pkce()
    async with Loopback(*listen) as receiver:
        url = oidcclient.authorization_url(
            provider,
            client_id=client.client_id,
            redirect_uri=receiver.redirect_uri,
            scopes=scopes,
            state=state,
            nonce=nonce,
            pkce=pkce,
        )
        if open_browser:
            say(f"opening a browser to log in; if none opens, visit this URL on this machine:\n{url}")
            _open_in_background(url)
        else:
            say(f"to log in, open this URL in a browser on this machine:\n{url}")
        code = await receiver.code(state, timeout)
        try:
            tokens = await oidcclient.exchange_code(
                provider, client, ssl_context, code=code, redirect_uri=receiver.redirect_uri, verifier=pkce.verifier
            )
            check_nonce(tokens.id_token, nonce)
        except oidcclient.ProviderError as exc:
            await receiver.answer(False, "the identity provider did not issue a token")
            raise CredentialError(f"the login failed: {exc}") from None
        except CredentialError as exc:
            await receiver.answer(False, str(exc))
            raise
        await receiver.answer(True, "kubectl has its credential. You can close this tab and return to the terminal.")
        return tokens


def check_nonce(id_token: str, nonce: str) -> None:
    """The id_token must carry this login's nonce (OIDC Core §3.1.3.7, step 11)."""
    try:
        payload = expiry.claims(id_token)
    except expiry.TokenFormatError as exc:
        raise CredentialError(f"the login failed: {exc}") from None
    got = payload.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise CredentialError(
            "the login failed: the id_token's nonce is not this login's (a token replayed from another login?)"
        )


def _open_in_background(url: str) -> None:
    _detach_stdout()
    threading.Thread(target=_open, args=(url,), name="browser", daemon=True).start()


def _open(url: str) -> None:
    with contextlib.suppress(webbrowser.Error):  # the URL is on stderr already
        webbrowser.open(url)


def _detach_stdout() -> None:
    """Point file descriptor 1 at stderr for whatever the browser starts, keeping the real stdout for the
    ExecCredential: kubectl reads stdout to its end, so a browser holding it would keep kubectl waiting, and
    anything a browser prints there would spoil the credential."""
    if sys.stdout is None or sys.__stdout__ is None or sys.stdout is not sys.__stdout__:
        return  # already detached, or stdout is not the process's (tests running in-process)
    sys.stdout.flush()
    kept = os.dup(1)  # not inherited by children (PEP 446)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(kept, "w", encoding="utf-8")
