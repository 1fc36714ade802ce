"""Call an object the same way whether it is a Ray actor or a plain in-process object.

Workers and the learner talk to the replay and the coordinator as `handle.method.remote(...)`
and read results with `resolve(...)`. Given a Ray actor handle that is Ray; given
`LocalHandle(obj)` the call runs at once in this process and `resolve` passes the value
through. So the same code is unit-tested without Ray and runs distributed with it.
"""

from __future__ import annotations

from typing import Any


class _LocalMethod:
    def __init__(self, method: Any) -> None:
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method(*args, **kwargs)


class LocalHandle:
    """Wraps an object so `handle.method.remote(...)` calls `object.method(...)` directly."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(getattr(self.target, name))


def lookup(actor: Any) -> Any:
    """An actor handle from a handle or a named actor's name.

    Actors that Ray restarts get names rather than handles as constructor arguments:
    arguments that reference the object store (handles do) must outlive every restart.
    """
    if isinstance(actor, str):
        import ray

        return ray.get_actor(actor)
    return actor


def is_object_ref(value: Any) -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return isinstance(value, ray.ObjectRef)


def is_ready(value: Any) -> bool:
    """Whether `resolve(value)` would return at once: an ObjectRef whose value exists, or a plain value."""
    if is_object_ref(value):
        import ray

        ready, _ = ray.wait([value], timeout=0)
        return bool(ready)
    return True


def resolve(value: Any, timeout: float | None = None) -> Any:
    """ray.get for an ObjectRef, the value itself otherwise."""
    if is_object_ref(value):
        import ray

        return ray.get(value, timeout=timeout)
    return value


def put(value: Any, distributed: bool) -> Any:
    """Into the object store once (so every reader shares one copy), or as is in-process."""
    if distributed:
        import ray

        return ray.put(value)
    return value


class Shared:
    """A value put into the object store once and handed to actors by reference.

    Ray keeps an actor's constructor arguments to re-create it after a crash; a large
    argument would be copied into the store per actor and must outlive every restart.
    Passing `Shared(value)` instead ships a small reference (the driver keeps the value
    alive for the run) and the actor calls `unshare` to read it.
    """

    def __init__(self, value: Any) -> None:
        import ray

        self._refs = [ray.put(value)]  # in a list: Ray does not resolve nested references on its own

    def get(self) -> Any:
        import ray

        return ray.get(self._refs[0])


def unshare(value: Any) -> Any:
    return value.get() if isinstance(value, Shared) else value
