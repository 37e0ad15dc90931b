"""spec/vectors/payloads/ through a real Python worker process (issue: payloads mean the
same in every SDK). The node delivers every vector's forms to ``python -m
crosswire.testworker``, whose ``test.payload.order`` / ``test.payload.numbers`` handlers
take ``Event[Order]`` / ``Event[Numbers]`` and emit what they read; valid vectors must
come back equal to ``expected`` field by field, invalid ones must be dead-lettered as the
Python worker's ``invalid_argument``, the handler never having run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "payload_vectors", Path(__file__).resolve().parents[1] / "conformance" / "test_payload_vectors.py"
)
assert _spec is not None and _spec.loader is not None
vectors = importlib.util.module_from_spec(_spec)
sys.modules["payload_vectors"] = vectors  # its Structs' annotations resolve in it
_spec.loader.exec_module(vectors)


async def test_python_worker_decodes_every_vector_like_the_node() -> None:
    name = "testworker-python"
    await vectors.worker_reads_every_vector(
        [sys.executable, "-m", "crosswire.testworker", "--name", name],
        name,
        "python",
        message="payload does not decode as",
    )
