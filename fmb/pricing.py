"""FMBench's pricing.yml: hourly instance prices and per-1k-token prices.

The file has one section ``pricing`` with ``instance_based`` (instance type -> USD per
hour) and ``token_based`` (model id -> ``input-per-1k-tokens``, ``output-per-1k-tokens``).
A run stores the prices in force in ``raw/pricing``, so a later change of the file never
rewrites the cost of an earlier run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fmb.errors import ConfigError


@dataclass(frozen=True)
class Price:
    pricing_type: str  # "instance" or "token"
    price_key: str
    price_per_hour_usd: float | None = None
    input_per_1k_tokens_usd: float | None = None
    output_per_1k_tokens_usd: float | None = None


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(str(path), f"a price must be a number of USD, got {value!r}.", key=key)
    if value < 0:
        raise ConfigError(str(path), f"a price cannot be negative, got {value}.", key=key)
    return float(value)


def load_prices(path: Path) -> list[Price]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"this pricing file is not valid YAML ({exc}).") from None
    section = (data or {}).get("pricing") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(str(path), "a pricing file needs a top-level 'pricing:' mapping.", key="pricing")
    prices: list[Price] = []
    for key, value in (section.get("instance_based") or {}).items():
        prices.append(
            Price("instance", str(key), price_per_hour_usd=_number(path, f"pricing.instance_based.{key}", value))
        )
    for key, value in (section.get("token_based") or {}).items():
        where = f"pricing.token_based.{key}"
        if not isinstance(value, dict):
            raise ConfigError(str(path), "expected input-per-1k-tokens and output-per-1k-tokens.", key=where)
        prices.append(
            Price(
                "token",
                str(key),
                input_per_1k_tokens_usd=_number(path, f"{where}.input-per-1k-tokens", value.get("input-per-1k-tokens")),
                output_per_1k_tokens_usd=_number(
                    path, f"{where}.output-per-1k-tokens", value.get("output-per-1k-tokens")
                ),
            )
        )
    return prices


_GEO_PREFIX = re.compile(r"^(us|eu|apac|us-gov|global|ca|jp|au)\.")


def base_model(model: str) -> str:
    """`meta.llama3-1-8b-instruct-v1:0` from a Bedrock cross-region inference profile id (`us.meta...`).

    The warehouse matches prices with the same rule (the dbt macro ``base_model``).
    """
    return _GEO_PREFIX.sub("", model)
