"""The demo shop: a seeded synthetic e-commerce dataset with graded labels by construction.

``generate_demo_shop(DemoShopConfig())`` returns a :class:`~shopsearch.data.schema.Dataset` (ESCI
grades, Zipf traffic, eight verticals, broad to knowledge/negation/alternative queries). It is
SYNTHETIC: ``dataset.meta["synthetic"]`` is True and ``meta["note"]`` says so. ``build_demo_shop``
also returns the ground truth (intents, product facets, noise applied) for oracle judging.
"""

from shopsearch.data.demo.generator import (
    SYNTHETIC_NOTE,
    DemoShop,
    DemoShopConfig,
    build_demo_shop,
    generate_demo_shop,
    zipf_traffic,
)
from shopsearch.data.demo.intent import QUERY_TYPES, Intent, grade_product

__all__ = [
    "QUERY_TYPES",
    "SYNTHETIC_NOTE",
    "DemoShop",
    "DemoShopConfig",
    "Intent",
    "build_demo_shop",
    "generate_demo_shop",
    "grade_product",
    "zipf_traffic",
]
