"""The secret rules redaction applies: one regular expression per kind of secret.

Derived from gitleaks' published rule set (its rule ids, its prefixes and lengths;
MIT licensed), cut to the kinds an agent's prompt, log or artifact carries, and
kept as data: a rule is an id and a pattern whose group ``s`` (the whole match
when it has none) is the secret. Rules that key on a word rather than a
prefix (``generic-api-key``) also require the value to look random (Shannon
entropy; for the generic rule, a digit and a letter too), as gitleaks does, so
that code and prose that merely mention a password are left alone. docs/provenance.md says why this
set and not a library, and what the bench measures of it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Rule:
    id: str
    pattern: str
    min_entropy: float = 0.0  # of the secret, in bits per character
    mixed: bool = False  # the secret must hold a digit and a letter

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.pattern)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_END = r"(?![A-Za-z0-9_-])"
_KEYWORD_VALUE = r"""["']?\s*(?:=|:=|:|=>)\s*["']?"""

RULES: tuple[Rule, ...] = (
    Rule("private-key", r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
                        r"[\s\S]{20,}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    Rule("aws-access-token", r"(?<![A-Z0-9])(?P<s>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)"
                             r"[A-Z2-7]{16})(?![A-Z0-9])"),
    Rule("aws-secret-access-key", r"(?i:aws[\w.-]{0,20}?secret[\w.-]{0,20}?)" + _KEYWORD_VALUE
         + r"(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", 3.5),
    Rule("github-fine-grained-pat", r"\b(?P<s>github_pat_[A-Za-z0-9_]{82})" + _END),
    Rule("github-pat", r"\b(?P<s>ghp_[A-Za-z0-9]{36})" + _END),
    Rule("github-oauth", r"\b(?P<s>gho_[A-Za-z0-9]{36})" + _END),
    Rule("github-app-token", r"\b(?P<s>(?:ghu|ghs)_[A-Za-z0-9]{36})" + _END),
    Rule("github-refresh-token", r"\b(?P<s>ghr_[A-Za-z0-9]{36})" + _END),
    Rule("gitlab-pat", r"\b(?P<s>glpat-[A-Za-z0-9_-]{20})" + _END),
    Rule("slack-webhook-url", r"(?P<s>https?://hooks\.slack\.com/(?:services|workflows|triggers)"
                              r"/[A-Za-z0-9+/_-]{20,})"),
    Rule("slack-token", r"\b(?P<s>xox[abeoprs]-(?:[0-9]{8,13}-){1,3}[A-Za-z0-9-]{8,})"),
    Rule("slack-app-token", r"\b(?P<s>xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)" + _END),
    Rule("jwt", r"\b(?P<s>eyJ[A-Za-z0-9_-]{15,}\.eyJ[A-Za-z0-9_-]{15,}\.[A-Za-z0-9_-]{10,})"),
    Rule("url-password", r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/?#@'\"]{1,100}:"
                         r"(?P<s>[^\s/?#@'\"]{1,200})@"),
    Rule("stripe-access-token", r"\b(?P<s>(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99})"
         + _END),
    Rule("gcp-api-key", r"\b(?P<s>AIza[A-Za-z0-9_-]{35})" + _END),
    Rule("gcp-oauth-client-secret", r"\b(?P<s>GOCSPX-[A-Za-z0-9_-]{28})" + _END),
    Rule("gcp-oauth-access-token", r"\b(?P<s>ya29\.[A-Za-z0-9_-]{30,})"),
    Rule("azure-storage-account-key", r"(?i:AccountKey)=(?P<s>[A-Za-z0-9+/]{86}==)"),
    Rule("azure-ad-client-secret", r"(?<![A-Za-z0-9_~.-])(?P<s>[A-Za-z0-9_~.]{3}\dQ~"
                                   r"[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])"),
    Rule("azure-sas-signature", r"[?&]sig=(?P<s>[A-Za-z0-9%]{43,})"),
    Rule("npm-access-token", r"\b(?P<s>npm_[A-Za-z0-9]{36})" + _END),
    Rule("pypi-upload-token", r"\b(?P<s>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})"),
    Rule("openai-api-key", r"\b(?P<s>sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,}"
                           r"T3BlbkFJ[A-Za-z0-9_-]{20,})" + _END),
    Rule("openai-project-key", r"\b(?P<s>sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})" + _END),
    Rule("anthropic-api-key", r"\b(?P<s>sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{80,})"
         + _END),
    Rule("huggingface-access-token", r"\b(?P<s>hf_[A-Za-z]{34})" + _END),
    Rule("sendgrid-api-token", r"\b(?P<s>SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})" + _END),
    Rule("twilio-api-key", r"\b(?P<s>SK[0-9a-f]{32})" + _END),
    Rule("digitalocean-pat", r"\b(?P<s>do[por]_v1_[a-f0-9]{64})" + _END),
    Rule("shopify-token", r"\b(?P<s>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})" + _END),
    Rule("mailchimp-api-key", r"\b(?P<s>[0-9a-f]{32}-us\d{1,2})" + _END),
    Rule("telegram-bot-token", r"(?<![0-9])(?P<s>\d{8,10}:AA[A-Za-z0-9_-]{33})" + _END),
    Rule("age-secret-key", r"(?P<s>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})"),
    Rule("databricks-api-token", r"\b(?P<s>dapi[a-f0-9]{32}(?:-\d)?)" + _END),
    Rule("authorization-bearer", r"(?i:authorization:\s*bearer)\s+(?P<s>[A-Za-z0-9._~+/-]{20,}=*)",
         3.0),
    Rule("generic-api-key",
         r"(?i:(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|"
         r"access[_-]?token|client[_-]?secret)[\w-]{0,20})" + _KEYWORD_VALUE
         + r"(?P<s>[A-Za-z0-9_+/=!@#$%^&*~-]{10,150})(?![A-Za-z0-9_+/=!@#$%^&*~-])", 3.0,
         mixed=True),
)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def random_enough(rule: Rule, secret: str) -> bool:
    if rule.min_entropy and entropy(secret) < rule.min_entropy:
        return False
    return not rule.mixed or (any(c.isdigit() for c in secret)
                              and any(c.isalpha() for c in secret))


@cache
def rules_digest() -> str:
    """Names the rule set a bundle was redacted with (its ids, patterns and thresholds)."""
    text = "\n".join(f"{r.id}\t{r.pattern}\t{r.min_entropy}\t{r.mixed}" for r in RULES)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
