"""Redaction: every kind of secret in the fixture set is replaced (100 % recall), the
text a bundle is made of is left alone, and paths are made relative to the repository."""

from __future__ import annotations

import random

import pytest

from striatum.corpus.redact import Redactor, sha256_text
from striatum.corpus.rules import RULES
from tests.secret_samples import KINDS, RECORD_SHAPED, secrets


def test_the_fixture_set_has_at_least_twenty_kinds() -> None:
    assert len(KINDS) >= 20


@pytest.mark.parametrize("seed", range(4))
def test_every_secret_of_every_kind_is_redacted(seed: int) -> None:
    missed = []
    for kind, text, secret in secrets(seed, per_kind=25):
        redacted, rules = Redactor().text(text)
        if secret in redacted or not rules or "[REDACTED:" not in redacted:
            missed.append((kind, text))
    assert not missed


def test_the_marker_names_the_rule_and_keeps_the_rest_of_the_text() -> None:
    text = "DATABASE_URL=postgresql://app:" + "Zq8vN2rT5xLm" + "@db.internal:5432/prod"
    redacted, rules = Redactor().text(text)
    assert redacted == "DATABASE_URL=postgresql://app:[REDACTED:url-password]@db.internal:5432/prod"
    assert rules == ["url-password"]


def test_what_a_bundle_is_made_of_is_never_taken_for_a_secret() -> None:
    rng = random.Random(7)
    flagged = [text for make in RECORD_SHAPED for text in (make(rng) for _ in range(200))
               if Redactor().text(text)[1]]
    assert not flagged


def test_a_word_next_to_an_unrandom_value_is_left_alone() -> None:
    for text in ("password = os.environ['DB_PASSWORD']", "password: ${DB_PASSWORD}",
                 "api_key = get_api_key()", "Authorization: Bearer <token>"):
        assert Redactor().text(text) == (text, [])


def test_paths_become_relative_to_the_repository_and_urls_stay() -> None:
    redactor = Redactor("/home/alice/work/repo")
    text = ("wrote /home/alice/work/repo/src/x.py, read /home/alice/.cache/pip/y and "
            "https://example.org/a/b; in /home/alice/work/repo")
    redacted, rules = redactor.text(text)
    assert redacted == ("wrote src/x.py, read ../../.cache/pip/y and https://example.org/a/b; "
                        "in .")
    assert rules == ["path"]
    assert Redactor("/home/alice/work/repo", paths=False).text(text) == (text, [])


def test_a_document_records_where_which_rules_and_the_original_digest() -> None:
    secret = "ghp_" + "q7Rk2LmZ9vXc4TbN8sWd1FhJ6pYg3AeU0iOo"
    original = f"log shows {secret}"
    redacted, found = Redactor().document({"data": {"reason": original, "n": 1},
                                           "list": ["plain"]})
    assert redacted == {"data": {"reason": "log shows [REDACTED:github-pat]", "n": 1},
                        "list": ["plain"]}
    assert found == [{"pointer": "/data/reason", "rules": ["github-pat"],
                      "original_sha256": sha256_text(original)}]


def test_rule_ids_are_unique() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))


def test_redacting_twice_changes_nothing_more() -> None:
    once, _ = Redactor().text("DATABASE_URL=postgresql://app:" + "Zq8vN2rT5xLm" + "@db/prod")
    assert Redactor().text(once) == (once, [])
