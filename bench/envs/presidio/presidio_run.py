"""Run Microsoft Presidio's pattern recognisers over texts; runs inside bench/envs/presidio.

Called by bench/bench_detect.py. Presidio's ``AnalyzerEngine`` needs a spaCy model, which cannot
be downloaded here, so the recognisers are called directly (``recognizer.analyze(text,
entities, nlp_artifacts=None)``), as a user without a model would: Presidio's own pattern
recognisers for credit cards (Luhn) and e-mail, and PatternRecognizers configured for what
Presidio lacks for China (resident ID with its GB 11643 check, mobile, unified social credit
code with its GB 32100 check), with the same regular expressions a user would write. Texts are analysed one by one
(one table cell or one line each). CPU time is measured here, warm (after one pass).
Output: JSON ``{"flags": [bool per text], "cpu_s": float, "version": str}``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


class ResidentIdRecognizer(PatternRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        body = pattern_text[:17]
        total = sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
        return "10X98765432"[total % 11] == pattern_text[17].upper()


class CreditCodeRecognizer(PatternRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
        total = sum(alphabet.index(c) * w for c, w in zip(pattern_text[:17], weights, strict=True))
        return alphabet[(31 - total % 31) % 31] == pattern_text[17]


def recognizers() -> list[PatternRecognizer]:
    return [
        CreditCardRecognizer(),
        EmailRecognizer(),
        ResidentIdRecognizer(
            supported_entity="CN_RESIDENT_ID",
            patterns=[
                Pattern(
                    "cn_resident_id",
                    r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)",
                    0.6,
                )
            ],
        ),
        PatternRecognizer(
            supported_entity="CN_MOBILE",
            patterns=[Pattern("cn_mobile", r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)", 0.5)],
        ),
        CreditCodeRecognizer(
            supported_entity="CN_USCC",
            patterns=[
                Pattern(
                    "cn_uscc",
                    r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])",
                    0.5,
                )
            ],
        ),
    ]


def analyse(texts: list[str], recs: list[PatternRecognizer]) -> list[bool]:
    return [any(r.analyze(t, r.supported_entities, None) for r in recs) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", required=True, help="JSON list of strings")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.texts, encoding="utf-8") as fh:
        texts = json.load(fh)
    recs = recognizers()
    analyse(texts[:100], recs)  # warm-up: regex compilation, tldextract's suffix list
    started = time.process_time()
    flags = analyse(texts, recs)
    cpu = time.process_time() - started
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "flags": flags,
                "cpu_s": cpu,
                "version": importlib.metadata.version("presidio-analyzer"),
            },
            fh,
        )


if __name__ == "__main__":
    main()
