"""Embedding store throughput and nearest-neighbour quality, on SQLite and on Postgres + pgvector.

For each backend and each of ``--dim`` (one or more dimensions): ``put_many`` of ``--n`` vectors (Postgres: HNSW index
deferred and built once afterwards, its build time reported apart), ``get_many`` of all of
them, and top-``--k`` search for ``--queries`` queries: exact (SQLite: numpy over the cached
matrix; Postgres: sequential scan) and HNSW (Postgres), with recall@k of HNSW against exact.
The vectors lie near a 32-dimensional subspace (unit-normalised), like real embeddings.
On Postgres a dimension from 2001 to 4000 is stored as ``halfvec`` (float16) with its own HNSW
index, and above 4000 as ``vector`` searched exactly; each result names its stored dtype.
Postgres is started by ``pgserver`` in a temporary folder. Prints JSON.

    PYTHONPATH=. python benchmarks/embedding_store.py [--n 100000] [--dim 1024 [3072 ...]] [--queries 100] [--backends sqlite postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from aesthetic_platform.embeddings import EmbeddingStoreConfig, ModelSpec, Store


def embedding_like(n: int, dim: int, seed: int = 0, intrinsic: int = 32, noise: float = 0.05) -> np.ndarray:
    """Unit vectors on a ``intrinsic``-dimensional subspace plus a little noise: like real embeddings, neighbours are
    meaningful (i.i.d. Gaussian vectors in 1024 dimensions are all nearly equidistant, which no index can rank)."""
    basis = np.random.default_rng(12345).standard_normal((intrinsic, dim)).astype(np.float32)  # shared by data and queries
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        out[start:stop] = rng.standard_normal((stop - start, intrinsic)).astype(np.float32) @ basis
        out[start:stop] += noise * np.sqrt(intrinsic) * rng.standard_normal((stop - start, dim)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def postgres_url(folder: Path):
    import pgserver

    os.chmod(folder, 0o777)
    server = pgserver.get_server(folder, cleanup_mode="stop")
    return server, sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def latencies(fn, queries: np.ndarray) -> tuple[list[list[str]], dict[str, float]]:
    results, times = [], []
    for q in queries:
        start = time.perf_counter()
        results.append([hit.sha256 for hit in fn(q)])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return results, {"mean_ms": statistics.fmean(times), "p50_ms": times[len(times) // 2], "p95_ms": times[int(len(times) * 0.95) - 1]}


def run_backend(backend: str, url: str, vectors: np.ndarray, hashes: list[str], queries: np.ndarray, k: int) -> dict:
    n, dim = vectors.shape
    out: dict = {"backend": backend, "dim": dim}
    with Store.open(EmbeddingStoreConfig(db_url=url)) as store:
        if backend == "postgres":
            out["pgvector"] = ".".join(map(str, store.pgvector_version()))
        model = store.register_model(ModelSpec(f"bench-{dim}", "1", dim, "text"))
        out["stored_dtype"] = model.dtype
        out["pg_column"] = model.pg_column if backend == "postgres" else None
        out["hnsw_index"] = backend == "postgres" and model.pg_indexed
        start = time.perf_counter()
        with store.deferred_index(model):
            store.put_many(model, dict(zip(hashes, vectors, strict=True)))
            put_s = time.perf_counter() - start
            index_start = time.perf_counter()
        out["put"] = {"seconds": put_s, "vectors_per_s": n / put_s, "write_chunk": store.write_chunk}
        if backend == "postgres":
            out["index_build_s"] = time.perf_counter() - index_start  # the HNSW build and the ANALYZE after the load
        start = time.perf_counter()
        got = store.get_many(model, hashes)
        get_s = time.perf_counter() - start
        assert len(got) == n
        out["get"] = {"seconds": get_s, "vectors_per_s": n / get_s, "lookup_chunk": store.lookup_chunk}
        exact, out["exact_top_k"] = latencies(lambda q: store.search(model, q, k=k, exact=True), queries)
        if backend == "postgres" and model.pg_indexed:
            for ef in (40, 100):
                approx, timing = latencies(lambda q, ef=ef: store.search(model, q, k=k, ef_search=ef), queries)
                recall = statistics.fmean(len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True))
                out[f"hnsw_top_k_ef{ef}"] = {**timing, f"recall_at_{k}": recall}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", "--dims", dest="dims", type=int, nargs="+", default=[1024], help="one or more dimensions")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    hashes = [hashlib.sha256(f"bench-{i}".encode()).hexdigest() for i in range(args.n)]
    report = {"n": args.n, "dims": args.dims, "k": args.k, "queries": args.queries, "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "results": []}
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        for backend in args.backends:
            if backend == "sqlite":
                url, server = f"sqlite:///{tmp}/bench.db", None
            else:
                folder = Path(tmp) / "pg"
                folder.mkdir()
                server, url = postgres_url(folder)
            try:
                for dim in args.dims:  # one database per backend; each dimension is its own model
                    vectors, queries = embedding_like(args.n, dim), embedding_like(args.queries, dim, seed=1)
                    report["results"].append(run_backend(backend, url, vectors, hashes, queries, args.k))
                    del vectors
            finally:
                if server is not None:
                    server.cleanup()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
