"""Where one request exchange is in its life, and the one function that moves it on.

In the spirit of h11's state tables: every change of phase is an event looked up in ``TRANSITIONS``; a pair
that is not there is a bug in the proxy (``InvalidTransition``), never something a client or kube-apiserver
can cause, because each caller checks the phase it acts in first. The endings absorb a late ``CLIENT_LOST``
(the client may leave at any time, also after its answer was written).

    DECIDING --FORWARD--> FORWARDING --RESPONSE_HEAD--> RESPONDING --RESPONSE_END--> COMPLETE
       |                    |    ^ RETRY                   |  \\--SWITCH--> TUNNEL
       +--ANSWER------------+----+--> COMPLETE             +--CUT--> BROKEN
       (any phase before an ending) --CLIENT_LOST--> CLIENT_GONE

What each phase allows, for the code that asks: before ``RESPONDING`` a failure is still answered with a
Status (``ANSWER``); from ``RESPONDING`` on the client has a response head, so a failure can only cut it.
"""

from __future__ import annotations

import enum
from typing import Final


class Phase(enum.Enum):
    DECIDING = "deciding"  # the gate and the RequestReceived audit event; nothing has gone upstream
    FORWARDING = "forwarding"  # the request is going (or went) to kube-apiserver; no response byte relayed
    RESPONDING = "responding"  # the response head went to the client; its body is being relayed
    COMPLETE = "complete"  # a whole response went to the client: relayed, or the proxy's own Status
    TUNNEL = "tunnel"  # protocols switched: the connection became a tunnel, the exchange is over
    BROKEN = "broken"  # the response was cut after its head: the client sees it incomplete
    CLIENT_GONE = "client gone"  # the client left before its response was complete

    # Members are singletons: hashed by identity, in C. Enum's own ``__hash__`` is Python code hashing the
    # name, and every ``over`` and ``advance`` hashes (three transitions and six checks a request).
    __hash__ = object.__hash__

    @property
    def over(self) -> bool:
        return self in ENDINGS

    @property
    def answered(self) -> bool:
        """The client has a response head (a Status can no longer be sent instead)."""
        return self not in (Phase.DECIDING, Phase.FORWARDING)


class Event(enum.Enum):
    FORWARD = "forward"  # admitted: an upstream connection or stream is being taken
    RETRY = "retry"  # a reused connection was found closed before any response byte: once more
    RESPONSE_HEAD = "response head"  # kube-apiserver's head was relayed (a 101 included)
    RESPONSE_END = "response end"  # the body ended (or a watch was ended at an event boundary)
    SWITCH = "switch"  # after a 101 head: the connection is handed to a tunnel
    ANSWER = "answer"  # the proxy answered with its own Status (denied, shed, failed before a head)
    CUT = "cut"  # the response could not be finished: the client connection or stream is cut
    CLIENT_LOST = "client lost"

    __hash__ = object.__hash__  # as Phase's


ENDINGS: Final = frozenset({Phase.COMPLETE, Phase.TUNNEL, Phase.BROKEN, Phase.CLIENT_GONE})

TRANSITIONS: Final[dict[tuple[Phase, Event], Phase]] = {
    (Phase.DECIDING, Event.FORWARD): Phase.FORWARDING,
    (Phase.DECIDING, Event.ANSWER): Phase.COMPLETE,
    (Phase.FORWARDING, Event.RETRY): Phase.FORWARDING,
    (Phase.FORWARDING, Event.RESPONSE_HEAD): Phase.RESPONDING,
    (Phase.FORWARDING, Event.ANSWER): Phase.COMPLETE,
    (Phase.RESPONDING, Event.RESPONSE_END): Phase.COMPLETE,
    (Phase.RESPONDING, Event.SWITCH): Phase.TUNNEL,
    (Phase.RESPONDING, Event.CUT): Phase.BROKEN,
    **{(phase, Event.CLIENT_LOST): Phase.CLIENT_GONE for phase in (Phase.DECIDING, Phase.FORWARDING, Phase.RESPONDING)},
    **{(phase, Event.CLIENT_LOST): phase for phase in ENDINGS},
}


class InvalidTransition(AssertionError):
    pass


def advance(phase: Phase, event: Event) -> Phase:
    try:
        return TRANSITIONS[phase, event]
    except KeyError:
        raise InvalidTransition(f"{event.value!r} in phase {phase.value!r}") from None
