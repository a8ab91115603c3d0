"""The price catalog: effective-dated Vertex AI prices with provenance, loaded from YAML."""

from router.catalog.loader import Catalog, default_catalog, default_catalog_dir, load_catalog
from router.catalog.models import (
    CatalogModel,
    LongContextTier,
    PriceBlock,
    Provenance,
    ProvisionedThroughput,
    Quality,
    QuotaPoolSpec,
)

__all__ = [
    "Catalog",
    "CatalogModel",
    "LongContextTier",
    "PriceBlock",
    "Provenance",
    "ProvisionedThroughput",
    "Quality",
    "QuotaPoolSpec",
    "default_catalog",
    "default_catalog_dir",
    "load_catalog",
]
