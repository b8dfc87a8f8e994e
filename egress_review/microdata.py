"""Disclosure checks for microdata (row-level) outputs, and k-anonymisation.

The public entry point for microdata: it re-exports the checks (k-anonymity with missing values
as wildcards, l-diversity, re-identification risk; :func:`check_microdata`, documented in
``microdata_checks``) and k-anonymisation (:func:`enforce_k` and its generalisers, in
``microdata_anonymise``), so callers import both from one place while each concept lives in its
own module.
"""

from __future__ import annotations

from egress_review.microdata_anonymise import (
    Generaliser,
    band,
    enforce_k,
    prefix,
    recode,
    year,
    year_month,
)
from egress_review.microdata_checks import (
    FAIL,
    MAX_LISTED,
    PASS,
    REVIEW,
    KAnonymity,
    LDiversity,
    MicrodataReport,
    ReidentificationRisk,
    check_microdata,
    individual_risk,
    sample_frequencies,
)

__all__ = [
    "FAIL",
    "MAX_LISTED",
    "PASS",
    "REVIEW",
    "Generaliser",
    "KAnonymity",
    "LDiversity",
    "MicrodataReport",
    "ReidentificationRisk",
    "band",
    "check_microdata",
    "enforce_k",
    "individual_risk",
    "prefix",
    "recode",
    "sample_frequencies",
    "year",
    "year_month",
]
