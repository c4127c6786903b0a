"""Well-formed, random secrets of many kinds, and look-alikes that are not secrets.

Generated at each call from a seeded ``random.Random``: none is a real credential.
Each kind yields (the text a prompt, log or artifact might hold, the secret in it);
``tests/unit/test_redaction.py`` holds redaction to 100 % recall on them, and
``bench/redaction.py`` measures the false-positive rate on the look-alikes.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64URL = ALNUM + "-_"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _jwt(rng: random.Random) -> str:
    def part(document: dict[str, object]) -> str:
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return (part({"alg": "HS256", "typ": "JWT"}) + "."
            + part({"sub": pick(rng, DIGITS, 10), "name": pick(rng, LOWER, 8),
                    "iat": rng.randrange(10**9, 2 * 10**9)})
            + "." + pick(rng, B64URL, 43))


def _private_key(rng: random.Random) -> str:
    body = "\n".join(pick(rng, ALNUM + "+/", 64) for _ in range(6))
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


# kind -> (secret maker, context template with {s})
KINDS: dict[str, tuple[Callable[[random.Random], str], str]] = {
    "aws-access-key-id": (lambda r: rng_choice(r, ["AKIA", "ASIA"]) + pick(r, UPPER + "234567", 16),
                          "aws_access_key_id = {s}"),
    "aws-secret-access-key": (lambda r: pick(r, ALNUM + "/+", 40),
                              "aws_secret_access_key = {s}"),
    "github-pat": (lambda r: "ghp_" + pick(r, ALNUM, 36), "git clone https://x:{s}@github.com/o/r"),
    "github-fine-grained-pat": (lambda r: "github_pat_" + pick(r, ALNUM + "_", 82),
                                "GH_TOKEN={s}"),
    "github-app-token": (lambda r: "ghs_" + pick(r, ALNUM, 36), "token: {s}"),
    "gitlab-pat": (lambda r: "glpat-" + pick(r, ALNUM + "_-", 20), "PRIVATE-TOKEN: {s}"),
    "slack-bot-token": (lambda r: f"xoxb-{pick(r, DIGITS, 12)}-{pick(r, DIGITS, 13)}-"
                                  + pick(r, ALNUM, 24), "SLACK_BOT_TOKEN={s}"),
    "slack-webhook": (lambda r: f"https://hooks.slack.com/services/T{pick(r, UPPER + DIGITS, 8)}"
                                f"/B{pick(r, UPPER + DIGITS, 10)}/{pick(r, ALNUM, 24)}",
                      "curl -X POST {s} -d @msg.json"),
    "private-key": (_private_key, "key file:\n{s}\n"),
    "jwt": (_jwt, "Authorization: Bearer {s}"),
    "postgres-dsn-password": (lambda r: pick(r, ALNUM, 16),
                              "DATABASE_URL=postgresql://app:{s}@db.internal:5432/prod"),
    "mysql-dsn-password": (lambda r: pick(r, ALNUM + "!$*", 12),
                           "connect mysql://root:{s}@10.0.0.7/app"),
    "stripe-secret-key": (lambda r: "sk_live_" + pick(r, ALNUM, 24), "stripe.api_key = '{s}'"),
    "stripe-restricted-key": (lambda r: "rk_test_" + pick(r, ALNUM, 24), "key {s} used"),
    "gcp-api-key": (lambda r: "AIza" + pick(r, B64URL, 35), "GOOGLE_API_KEY={s}"),
    "gcp-oauth-client-secret": (lambda r: "GOCSPX-" + pick(r, B64URL, 28),
                                '"client_secret": "{s}"'),
    "azure-storage-key": (lambda r: pick(r, ALNUM + "+/", 86) + "==",
                          "DefaultEndpointsProtocol=https;AccountName=x;AccountKey={s};"),
    "azure-ad-client-secret": (lambda r: pick(r, ALNUM, 3) + str(r.randrange(10)) + "Q~"
                                         + pick(r, ALNUM + "_~.-", 34),
                               "AZURE_CLIENT_SECRET={s}"),
    "npm-token": (lambda r: "npm_" + pick(r, ALNUM, 36), "//registry.npmjs.org/:_authToken={s}"),
    "pypi-token": (lambda r: "pypi-AgEIcHlwaS5vcmc" + pick(r, B64URL, 60),
                   "password = {s}"),
    "openai-key": (lambda r: "sk-proj-" + pick(r, B64URL, 58) + "T3BlbkFJ" + pick(r, B64URL, 58),
                   "OPENAI_API_KEY={s}"),
    "anthropic-key": (lambda r: "sk-ant-api03-" + pick(r, B64URL, 93) + "AA",
                      "export ANTHROPIC_API_KEY={s}"),
    "huggingface-token": (lambda r: "hf_" + pick(r, UPPER + LOWER, 34), "HF_TOKEN={s}"),
    "sendgrid-key": (lambda r: f"SG.{pick(r, B64URL, 22)}.{pick(r, B64URL, 43)}",
                     "SENDGRID_API_KEY={s}"),
    "twilio-api-key": (lambda r: "SK" + pick(r, HEX, 32), "twilio key {s}"),
    "digitalocean-token": (lambda r: "dop_v1_" + pick(r, HEX, 64), "DO_TOKEN={s}"),
    "shopify-token": (lambda r: "shpat_" + pick(r, HEX, 32), "X-Shopify-Access-Token: {s}"),
    "telegram-bot-token": (lambda r: pick(r, DIGITS, 10) + ":AA" + pick(r, B64URL, 33),
                           "bot{s}/sendMessage"),
    "age-secret-key": (lambda r: "AGE-SECRET-KEY-1" + pick(r, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
                                                           58), "# {s}"),
    "databricks-token": (lambda r: "dapi" + pick(r, HEX, 32), "DATABRICKS_TOKEN={s}"),
    "generic-password": (lambda r: pick(r, LOWER, 4) + pick(r, DIGITS, 3) + pick(r, UPPER, 4)
                                   + pick(r, "!@#$%", 1) + pick(r, ALNUM, 4),
                         'db_password: "{s}"'),
}


def rng_choice(rng: random.Random, options: list[str]) -> str:
    return rng.choice(options)


def secrets(seed: int = 0, per_kind: int = 5) -> list[tuple[str, str, str]]:
    """(kind, text, secret) for ``per_kind`` random secrets of every kind."""
    rng = random.Random(seed)
    out = []
    for kind, (make, template) in KINDS.items():
        for _ in range(per_kind):
            secret = make(rng)
            out.append((kind, template.format(s=secret), secret))
    return out


# What every bundle is full of: redacting one of these would break every bundle.
RECORD_SHAPED: list[Callable[[random.Random], str]] = [
    lambda r: f"sha256 {pick(r, HEX, 64)}",
    lambda r: f'"row_hash":"{pick(r, HEX, 64)}","previous_hash":"{pick(r, HEX, 64)}"',
    lambda r: f"commit {pick(r, HEX, 40)}",
    lambda r: f"run 20261205-{pick(r, HEX, 6)} job check fence {r.randrange(1, 9)}",
    lambda r: f"uuid {pick(r, HEX, 8)}-{pick(r, HEX, 4)}-{pick(r, HEX, 4)}-{pick(r, HEX, 4)}-"
              f"{pick(r, HEX, 12)}",
    lambda r: f"lease token {r.randrange(1, 50)}-{pick(r, HEX, 32)}",
    lambda r: f"2026-12-05T06:{r.randrange(10, 59)}:38.{pick(r, DIGITS, 6)}+00:00",
]

# Text that looks like a secret and is not one: digests, ids, placeholders, code.
LOOK_ALIKES: list[Callable[[random.Random], str]] = [
    *RECORD_SHAPED,
    lambda r: "aws_access_key_id = AKIAIOSFODNN7EXAMPLE".replace("AKIA", "AKIB"),
    lambda r: f"ghp_{pick(r, ALNUM, 10)} (a truncated token)",
    lambda r: "password = os.environ['DB_PASSWORD']",
    lambda r: "password: ${DB_PASSWORD}",
    lambda r: "api_key = get_api_key()",
    lambda r: "postgresql://app@db.internal:5432/prod?passfile=/run/pgpass",
    lambda r: "https://github.com/owner/repo/blob/main/README.md",
    lambda r: "-----BEGIN PUBLIC KEY-----",
    lambda r: f"eyJhbGciOi {pick(r, LOWER, 12)}",
    lambda r: f"sk-{pick(r, LOWER, 8)} is a short name",
    lambda r: f"the secret is in the vault at path kv/{pick(r, LOWER, 6)}",
    lambda r: f"base64 {base64.b64encode(pick(r, LOWER + ' ', 30).encode()).decode()}",
    lambda r: f"token_count = {r.randrange(100, 10**6)}",
    lambda r: f"secret_santa_{pick(r, LOWER, 5)} = True",
    lambda r: "Authorization: Bearer <token>",
]


def look_alikes(seed: int = 0, per_kind: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [make(rng) for make in LOOK_ALIKES for _ in range(per_kind)]
