"""Pinning a referenced gate to its run: fetched once, stored once, then only ever read.

    first tick   fetch the source ──► expand (params, args) ──► validate
                 ──► put_definition(key = sha256 of the expansion)   content-addressed, once
                 ──► the run's first write carries the Pin (source, version, sha256, key)
    later ticks  the token and the run name the key ──► in-process cache ──► (miss) one read

The definition is not part of the run item that every tick rewrites, so its size never
inflates a write's capacity units; a warm function reads it from memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from orchestrator.exceptions import DefinitionError
from orchestrator.model import Pin
from orchestrator.reference import definition_from_store, expand_fetched

if TYPE_CHECKING:
    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.ports import DefinitionSource, RunStore
    from orchestrator.reference import Reference

CACHE_SIZE = 128


class Pins:
    """Resolves referenced gates for the tick; keeps recently used definitions in memory."""

    def __init__(self, store: RunStore, source: DefinitionSource | None) -> None:
        self._store = store
        self._source = source
        self._cache: OrderedDict[str, GateDefinition] = OrderedDict()
        self._lock = threading.Lock()  # deliveries of one warm process may overlap (tests)

    def pin_new(
        self, job: Job, reference: Reference, expires_at: float
    ) -> tuple[GateDefinition, Pin, dict[str, str]]:
        """Fetch, expand and store the definition a new run will use; with the args in
        effect (defaults included: the run context's `args`).

        Raises DefinitionError (the reference cannot be read, or the definition is invalid),
        TransientError (the source or the store is unavailable: nothing was pinned)."""
        if self._source is None:
            raise DefinitionError([f"gate {reference.ref}: referenced gates are not configured"])
        fetched = self._source.fetch(job, reference.ref)
        expanded = expand_fetched(reference, fetched)
        self._store.put_definition(expanded.key, expanded.document, int(expires_at))
        self._remember(expanded.key, expanded.definition)
        pin = Pin(
            source=str(reference.ref),
            version=fetched.version,
            sha256=expanded.sha256,
            definition=expanded.key,
        )
        return expanded.definition, pin, expanded.args

    def cached(self, key: str) -> GateDefinition | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def pinned(self, key: str, run_id: str) -> GateDefinition:
        """The definition stored under `key`: from memory, else one read.

        Raises StoreUnavailable, or DefinitionError when it is no longer stored."""
        found = self.cached(key)
        if found is not None:
            return found
        document = self._store.load_definition(key)
        if document is None:
            raise DefinitionError(
                [f"run {run_id}: its pinned definition {key[:12]}... is no longer stored"]
            )
        definition = definition_from_store(document)
        self._remember(key, definition)
        return definition

    def _remember(self, key: str, definition: GateDefinition) -> None:
        with self._lock:
            self._cache[key] = definition
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
