"""Redis replies as the types ChainLens's clients really get.

`chainlens.deps.make_redis` builds clients without `decode_responses`, so string replies come
back as bytes. redis-py's annotations cannot know how a client was built and say
`bytes | str`; these helpers narrow a reply and fail loudly if a decoding client ever slips in.
"""

from __future__ import annotations


def as_bytes(reply: bytes | str) -> bytes:
    if isinstance(reply, str):
        raise TypeError("a Redis client with decode_responses=True: ChainLens expects bytes")
    return reply


def as_bytes_or_none(reply: bytes | str | None) -> bytes | None:
    return None if reply is None else as_bytes(reply)
