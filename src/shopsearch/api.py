"""The small public API, re-exported by ``shopsearch``: an index to build, save, load and search, one
``evaluate`` for retrievers or ready runs against judgments or a plain qrels mapping, and the two
trainers. Everything here is a thin front over the packages that do the work (``retrieval.store``,
``retrieval.systems``, ``eval.protocols``, ``training``), so the CLI and this API stay one code path.

    import shopsearch

    index = shopsearch.Index.build("products.csv")           # BM25 + the bundled MiniLM encoder
    index.search("cordless drill", k=5)                      # DataFrame: rank, product_id, score, title
    report = shopsearch.evaluate({"bm25": index.retriever("bm25"), "hybrid": index.retriever("hybrid")},
                                 qrels, queries={"q1": "cordless drill"})
    print(report.to_markdown())                              # NDCG@10, Recall@100, ... with paired tests
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from shopsearch.data.errors import ShopsearchError

if TYPE_CHECKING:
    from shopsearch.data.schema import Catalog, Dataset, Judgments, Queries
    from shopsearch.eval.report import EvalReport
    from shopsearch.retrieval.base import Retriever
    from shopsearch.retrieval.store import IndexBundle
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.reranker import RerankerConfig


def _catalog(catalog: Any, format: str | None = None) -> Catalog:
    """A :class:`Catalog` from a catalogue, a dataset, or a products file/directory in any format."""
    from shopsearch.data import load_dataset
    from shopsearch.data.schema import Catalog, Dataset

    if isinstance(catalog, Catalog):
        return catalog
    if isinstance(catalog, Dataset):
        return catalog.catalog
    if isinstance(catalog, pd.DataFrame):
        return Catalog(catalog)
    if isinstance(catalog, str | Path):
        return load_dataset(catalog=catalog, format=format).catalog
    raise ShopsearchError(f"expected a Catalog, a Dataset, a DataFrame or a products file, got {type(catalog).__name__}")


class Index:
    """A product index directory (BM25 and/or dense vectors with FAISS, a manifest with checksums),
    opened for search.

    Build one with :meth:`build` (into ``path``, or a temporary directory until :meth:`save`), open
    one with :meth:`load`; ``shopsearch index build`` writes the same directories.
    """

    def __init__(self, bundle: IndexBundle, *, _owned: tempfile.TemporaryDirectory | None = None) -> None:
        self._bundle = bundle
        self._owned = _owned  # kept alive as long as this object: the index lives in it
        self._systems: dict[str, Retriever] = {}
        self._texts: list[str] | None = None

    @classmethod
    def build(cls, catalog: Any, path: str | Path | None = None, *, model: str | Path | None = None,
              systems: Sequence[str] = ("bm25", "dense"), fields: Sequence[str] = ("title",),
              kind: str = "flat", format: str | None = None, show_progress: bool = True) -> Index:
        """Index ``catalog`` (a :class:`Catalog`, :class:`Dataset`, DataFrame, or a products file or
        dataset directory in any supported format) with ``systems`` (``bm25`` and/or ``dense``).

        ``model`` is the encoder: the bundled all-MiniLM-L6-v2 by default, a shipped model by name
        (``all-mpnet-base-v2``) or a sentence-transformers directory, e.g. ``shopsearch train``'s
        ``OUTPUT/model``. ``fields`` are the product fields rendered into the indexed text; ``kind`` the
        FAISS index (``flat``, ``hnsw``, ``ivfpq``)."""
        from shopsearch.data.render import ProductTextRenderer
        from shopsearch.retrieval.faiss_index import IndexSpec
        from shopsearch.retrieval.store import build_index, load_index

        owned = tempfile.TemporaryDirectory(prefix="shopsearch-index-") if path is None else None
        target = Path(owned.name) / "index" if owned is not None else Path(path)  # type: ignore[arg-type]
        build_index(_catalog(catalog, format), target, renderer=ProductTextRenderer(fields=tuple(fields)),
                    systems=tuple(systems), model=model, spec=IndexSpec(kind=kind), show_progress=show_progress)
        return cls(load_index(target), _owned=owned)

    @classmethod
    def load(cls, path: str | Path, *, model: str | Path | None = None, mmap: bool = False) -> Index:
        """Open an index directory, checking every file against its manifest (``model`` replaces the
        recorded encoder location, e.g. after moving the model)."""
        from shopsearch.retrieval.store import load_index

        return cls(load_index(path, model=model, mmap=mmap))

    def save(self, path: str | Path) -> Index:
        """Copy the index to ``path`` (written beside it, then renamed: an existing index there stays
        intact until the copy is whole) and return it opened from there."""
        from shopsearch.artifacts import atomic_dir

        with atomic_dir(path, overwrite=True) as tmp:
            shutil.copytree(self.path, tmp, dirs_exist_ok=True)
        return Index.load(path)

    @property
    def path(self) -> Path:
        return self._bundle.directory

    @property
    def products(self) -> pd.DataFrame:
        """The indexed products' display fields (``product_id``, ``title``, brand, ...), in index order."""
        return self._bundle.products

    @property
    def parts(self) -> list[str]:
        """What the index holds: ``bm25`` and/or ``dense``."""
        return self._bundle.systems

    def __len__(self) -> int:
        return len(self._bundle.product_ids)

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, {len(self):,} products, parts={self.parts})"

    def _default_system(self) -> str:
        return "hybrid" if {"bm25", "dense"} <= set(self.parts) else self.parts[0]

    def _product_texts(self) -> list[str]:
        """The indexed texts, rendered again from the stored products as the manifest says."""
        if self._texts is None:
            from shopsearch.data.render import ProductTextRenderer
            from shopsearch.data.schema import Catalog

            r = self._bundle.manifest["renderer"]
            renderer = ProductTextRenderer(fields=tuple(r["fields"]), labelled=r["labelled"],
                                           max_chars=r["max_chars"], separator=r["separator"])
            self._texts = renderer.render(Catalog(self.products.copy()))
        return self._texts

    def retriever(self, system: str | None = None) -> Retriever:
        """A retriever over this index, named in the system grammar of ``shopsearch eval --system``
        (:mod:`shopsearch.retrieval.systems`): ``bm25``, ``dense``, ``hybrid``, ``hybrid:coverage``,
        ``hybrid+spell``, ``hybrid>rerank:PATH@50``, ... (default: ``hybrid`` when both parts exist)."""
        from shopsearch.eval.pipeline import systems_from_index
        from shopsearch.retrieval.systems import parse_system

        name = system or self._default_system()
        if name not in self._systems:
            spec = parse_system(name)
            needs_texts = spec.spell or spec.rerank is not None or (spec.kind == "dense" and spec.model)
            texts = self._product_texts() if needs_texts else None
            self._systems[name] = systems_from_index([name], self.path, texts)[spec.name]
        return self._systems[name]

    def search(self, query: str | Sequence[str], k: int = 10, system: str | None = None) -> Any:
        """The top ``k`` products for ``query`` as a DataFrame (rank, product_id, score and the display
        fields), or a list of them for a list of queries."""
        if k < 1:
            raise ShopsearchError(f"k must be >= 1, got {k}")
        queries = [query] if isinstance(query, str) else list(query)
        result = self.retriever(system).search(queries, k=k)
        shown = self.products.set_index("product_id")
        frames = []
        for row in range(len(queries)):
            hits = [(str(p), float(s)) for p, s in zip(result.ids[row], result.scores[row], strict=True)
                    if s != float("-inf")]
            frame = pd.DataFrame(hits, columns=["product_id", "score"])
            frame.insert(0, "rank", range(1, len(frame) + 1))
            frames.append(frame.join(shown, on="product_id"))
        return frames[0] if isinstance(query, str) else frames


def _judgments(judgments: Any, relevant_min: int | None) -> Judgments:
    """:class:`Judgments` as given, or built from a qrels mapping ``{query_id: {product_id: grade}}``
    with integer grades ``0..max`` (relevant: ``grade >= relevant_min``, default 1, as in TREC)."""
    from shopsearch.data.schema import GradeScheme, Judgments

    if isinstance(judgments, Judgments):
        return judgments
    if not isinstance(judgments, Mapping):
        raise ShopsearchError(f"judgments: expected Judgments or a qrels mapping, got {type(judgments).__name__}")
    rows = [(str(q), str(p), int(g)) for q, grades in judgments.items() for p, g in grades.items()]
    if not rows:
        raise ShopsearchError("judgments: the qrels mapping is empty")
    top = max(g for *_, g in rows)
    if min(g for *_, g in rows) < 0:
        raise ShopsearchError("judgments: grades must be >= 0")
    relevant = 1 if relevant_min is None else relevant_min
    scheme = GradeScheme(name="qrels", max_grade=max(top, relevant), relevant_min=relevant,
                         description=f"integer grades 0..{max(top, relevant)}; relevant = grade >= {relevant}")
    return Judgments(pd.DataFrame(rows, columns=["query_id", "product_id", "grade"]), scheme)


def _queries(queries: Any) -> Queries | None:
    from shopsearch.data.schema import Queries

    if queries is None or isinstance(queries, Queries):
        return queries
    if isinstance(queries, Mapping):
        return Queries(pd.DataFrame({"query_id": [str(q) for q in queries],
                                     "text": [str(t) for t in queries.values()]}))
    raise ShopsearchError(f"queries: expected Queries or a mapping query_id -> text, got {type(queries).__name__}")


def evaluate(systems: Mapping[str, Any], judgments: Any, queries: Any = None, *, baseline: str | None = None,
             relevant_min: int | None = None, **options: Any) -> EvalReport:
    """Evaluate ``systems`` — retrievers (anything with ``search(texts, k)``: ``Index.retriever()``,
    ``BM25Retriever``, ...) *or* ready runs (``{query_id: [product_id, ...]}`` or ``(id, score)``
    pairs, best first), not a mix — against ``judgments``: :class:`Judgments` or a qrels mapping
    ``{query_id: {product_id: grade}}``. Retrievers need ``queries`` (:class:`Queries` or
    ``{query_id: text}``). ``baseline`` names the system every other is tested against (paired
    randomisation and bootstrap, Holm-adjusted); ``options`` go to
    :func:`shopsearch.eval.protocols.evaluate` (``metrics``, ``protocol``, ``strata``, ``n_resamples``, ...).
    Returns the report (``.to_markdown()``, ``.write_html(path)``, ``.to_dict()``, ``.per_query``)."""
    from shopsearch.eval import protocols

    if not systems:
        raise ShopsearchError("evaluate: no system given")
    is_run = {name: isinstance(s, Mapping) for name, s in systems.items()}
    judged, asked = _judgments(judgments, relevant_min), _queries(queries)
    if all(is_run.values()):
        return protocols.evaluate_runs(systems, asked, judged, baseline=baseline, **options)
    if any(is_run.values()):
        raise ShopsearchError(f"evaluate: give retrievers or runs, not both (runs: "
                              f"{[n for n, r in is_run.items() if r]})")
    if asked is None:
        raise ShopsearchError("evaluate: retrievers need the query texts (queries=Queries or {query_id: text})")
    return protocols.evaluate(systems, asked, judged, baseline=baseline, **options)


def train(train_set: Dataset, output: str | Path, *, dev_set: Dataset | None = None,
          config: TrainConfig | Mapping[str, Any] | None = None, resume: bool = True,
          show_progress: bool = True) -> Any:
    """Train the dual encoder (stage 1 contrastive, stage 2 ROAR; ``config`` as in the ``train``
    section of a config file, defaults otherwise) into ``output``; ``output/model`` opens with
    ``SentenceTransformer(path)`` and indexes with ``Index.build(catalog, model=output / "model")``."""
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import train as run

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(dict(config or {}))
    return run(train_set, cfg, output, dev_set=dev_set, resume=resume, show_progress=show_progress)


def train_reranker(train_set: Dataset, output: str | Path, *, first_stage: str | Any = "bm25",
                   dev_set: Dataset | None = None, config: RerankerConfig | Mapping[str, Any] | None = None,
                   resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train the cross-encoder re-ranker on hard negatives mined by ``first_stage`` (a system spec
    built over ``train_set``'s catalogue, or a retriever / :class:`Index`) into ``output``;
    ``output/model`` opens with ``CrossEncoder(path)`` and serves as ``hybrid>rerank:PATH@50``."""
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.retrieval.systems import build_systems
    from shopsearch.training.reranker import RerankerConfig
    from shopsearch.training.reranker import train_reranker as run

    cfg = config if isinstance(config, RerankerConfig) else RerankerConfig.model_validate(dict(config or {}))
    if isinstance(first_stage, Index):
        first_stage = first_stage.retriever()
    elif isinstance(first_stage, str):
        texts = ProductTextRenderer(fields=cfg.text_fields).render(train_set.catalog)
        first_stage = next(iter(build_systems([first_stage], train_set.catalog.ids, texts,
                                              show_progress=show_progress).values()))
    return run(train_set, first_stage, output, cfg, dev=dev_set, resume=resume, show_progress=show_progress)


def serve(index: str | Path | Index, *, host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> None:
    """Serve ``index`` over HTTP (the app of ``shopsearch serve``: /search, /docs, the search page),
    blocking until stopped. ``settings`` are the ``serve`` section's fields (``reranker``,
    ``rerank_depth``, ``cache_size``, ...)."""
    import uvicorn

    from shopsearch.serve.app import create_app
    from shopsearch.serve.settings import ServeSettings

    path = index.path if isinstance(index, Index) else Path(index)
    app = create_app(ServeSettings(index=path, host=host, port=port, **settings))
    uvicorn.run(app, host=host, port=port)
