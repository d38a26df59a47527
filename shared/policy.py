"""Responsible use: refuse tasks that fish for secrets or impersonate, and let real work through.

Real users call insurers, clinics, pharmacies, utilities and their own bank about member IDs, claims,
reference numbers and refunds; those must pass. What is refused is a task whose aim is to make the callee
reveal a one-time code, password, PIN, full card number or CVV, or to pose as a bank, a government body or a
person the owner is not. The rules read the task for *who gives what to whom*: "ask them for the code they
were texted" is refused, "ask them to mail me a new PIN" is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECRET = (
    r"(?:one[- ]?time\s+(?:pass)?(?:code|password|pin)|otp|verification\s+code|2fa(?:\s+code)?|"
    r"two[- ]factor(?:\s+code)?|security\s+code|auth(?:entication|orization)?\s+code|log-?in\s+code|"
    r"sms\s+code|confirmation\s+code\s+(?:they|he|she)\s+(?:got|received)|text(?:ed)?\s+code|"
    r"code\s+(?:they|he|she)\s+(?:just\s+)?(?:got|received|were\s+sent|was\s+sent)|"
    r"pass(?:word|code|phrase)s?|pins?(?:\s+(?:number|code))?|cvv2?|cvc|card\s+verification\s+(?:value|code)|"
    r"(?:full|whole|complete|entire|long)\s+(?:credit\s+|debit\s+)?card\s+numbers?|"
    r"(?:credit|debit)\s+card\s+(?:numbers?|details|info(?:rmation)?)|card\s+numbers?|"
    r"online\s+banking\s+(?:login|credentials|details)|log-?in\s+(?:details|credentials)|credentials|"
    r"social\s+security\s+numbers?|ssn|mother'?s\s+maiden\s+name)"
)

# Verbs that make the callee hand a secret over (to the agent, to us, to "me").
_ELICIT = (
    r"(?:get|obtain|ask(?:\s+\w+){0,2}\s+(?:for|about|what)|ask\s+for|collect|grab|extract|harvest|capture|"
    r"find\s+out|figure\s+out|learn|fish\s+for|phish|request|make\s+(?:them|him|her)\s+(?:give|read|say|tell)|"
    r"have\s+(?:them|him|her)\s+(?:give|read|say|tell|share|confirm|enter|key)|"
    r"(?:them|him|her)\s+to\s+(?:give|read|say|tell|share|confirm|spell|repeat|enter|key\s+in)|"
    r"convince|trick|persuade|talk\s+(?:them|him|her)\s+into|read\s+(?:out|back|it)|verify|confirm|"
    r"(?:give|tell|read)\s+(?:you|us|me)|write\s+down|note\s+down|record|what\s+(?:is|'s|are))"
)

# A new secret sent to the owner by the institution is normal ("mail me a new PIN", "reset my password").
_OWNER_RESET = re.compile(
    r"\b(?:reset|change|unlock|replace|re-?issue|new|update|forgot|forgotten|lost|mail\s+me|send\s+me|"
    r"recover)\b[^.;]{0,40}?\b(?:my\s+)?(?:pin|password|passcode|card)\b",
    re.I,
)

_IMPERSONATE_VERB = (
    r"(?:pretend(?:ing)?\s+(?:to\s+be|you'?re|you\s+are)|pose\s+as|posing\s+as|impersonat\w*|"
    r"claim(?:ing)?\s+(?:to\s+be|you'?re|you\s+are)|(?:say|tell\s+them|act\s+like)\s+(?:that\s+)?"
    r"(?:you'?re|you\s+are|we'?re|we\s+are)(?:\s+calling)?(?:\s+from)?|"
    r"(?:present|introduce|identify)\s+yourself\s+as|act\s+as|pass\s+yourself\s+off\s+as|"
    r"masquerad\w+\s+as|as\s+if\s+you\s+(?:were|are))"
)
_AUTHORITY = (
    r"(?:(?:the|their|his|her|a|an|from)\s+)*(?:bank|fraud\s+(?:department|team)|irs|hmrc|tax\s+office|"
    r"police|sheriff|fbi|cia|dea|government|federal|social\s+security|medicare\s+(?:office|agency)|"
    r"immigration|court|customs|embassy|dmv|visa|mastercard|amex|paypal|apple|microsoft|amazon\s+security|"
    r"chase|wells\s+fargo|citi|bank\s+of\s+america|their\s+\w+\s+provider)"
)
_PERSON = (
    r"(?:(?:his|her|their|my)\s+(?:mom|mother|dad|father|son|daughter|wife|husband|boss|manager|grandson|"
    r"granddaughter|lawyer|doctor|brother|sister|friend)|a\s+(?:relative|family\s+member|police\s+officer|"
    r"agent|official|officer|detective)|[A-Z][a-z]+\s+[A-Z][a-z]+|a\s+(?:real\s+)?(?:human|person))"
)
_CLAIM_HUMAN = re.compile(
    r"\b(?:say|tell\s+them|claim|insist|pretend)\b[^.;]{0,30}\b(?:you'?re|you\s+are)\s+(?:a\s+)?"
    r"(?:real\s+)?(?:human|person|not\s+(?:an?\s+)?(?:ai|bot|robot))\b",
    re.I,
)

_ELICIT_RE = re.compile(rf"\b{_ELICIT}\b", re.I)
_SECRET_RE = re.compile(rf"\b{_SECRET}\b", re.I)
_SECRET_FIRST = re.compile(
    rf"\b{_SECRET}\b[^.;!?]{{0,40}}?\b(?:from\s+(?:them|him|her|the\s+caller|the\s+person)|"
    rf"(?:they|he|she)\s+(?:got|received|were\s+sent|was\s+sent|have|use))\b",
    re.I,
)
_IMPERSONATE_AUTH = re.compile(rf"\b{_IMPERSONATE_VERB}\s+{_AUTHORITY}\b", re.I)
_IMPERSONATE_PERSON = re.compile(rf"\b{_IMPERSONATE_VERB}\s+{_PERSON}", re.I)
_IMPERSONATE_NAME = re.compile(rf"\b{_IMPERSONATE_VERB}\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def _owner_secret_only(task: str, start: int, end: int) -> bool:
    """The secret asked about is the owner's own, handed to the owner: "reset my PIN", "mail me a new PIN"."""
    phrase = task[start:end]
    if re.search(r"\b(?:wi-?fi|wireless|guest\s+network|network)\s+password$", phrase, re.I):
        return True  # a landlord's or hotel's network password is not a personal secret
    window = task[max(0, start - 30): end + 30]
    return bool(_OWNER_RESET.search(window)) and not re.search(r"\b(?:their|his|her)\b", phrase, re.I)


def _secret_requests(text: str) -> list[tuple[int, int]]:
    """Spans "verb ... secret" (every secret within reach of each eliciting verb) and "secret from them"."""
    spans = []
    for verb in _ELICIT_RE.finditer(text):
        reach = re.split(r"[.;!?]", text[verb.end(): verb.end() + 70])[0]
        spans += [(verb.start(), verb.end() + s.end()) for s in _SECRET_RE.finditer(reach)]
    spans += [(m.start(), m.end()) for m in _SECRET_FIRST.finditer(text)]
    return spans


def check_task(task: str, owner_name: str = "") -> Verdict:
    """Whether the agent may take this task; the reason is shown to the user when it may not."""
    text = " ".join(task.split())
    for start, end in _secret_requests(text):
        if not _owner_secret_only(text, start, end):
            return Verdict(False, "it asks the other side for a secret (one-time code, password, PIN, "
                                      "card number or security code); the agent never collects those")
    if _IMPERSONATE_AUTH.search(text):
        return Verdict(False, "it asks the agent to pose as a bank, a company's security team or a "
                              "government body; the agent always says who it calls for")
    if _CLAIM_HUMAN.search(text):
        return Verdict(False, "it asks the agent to claim to be human; it always says it is an AI assistant")
    person = _IMPERSONATE_PERSON.search(text)
    if person:
        named = _IMPERSONATE_NAME.search(text)
        is_owner = bool(named and owner_name and named.group(1).lower() in owner_name.lower())
        if not is_owner:
            return Verdict(False, "it asks the agent to pose as someone you are not; it calls as your "
                                  "AI assistant, on your behalf")
    return Verdict(True)


_DIGITS_RUN = re.compile(r"(?<![\w-])\d(?:[\s-]?\d){3,}(?![\w-])")
_CARD_RUN = re.compile(r"(?<![\w-])\d(?:[\s-]?\d){12,18}(?![\w-])")
_SECRET_CONTEXT = re.compile(
    r"\b(?:one[- ]?time|verification|security|log-?in|sms|access|auth\w*)\s+(?:code|number|pin)\b|"
    r"\b(?:otp|pin|passcode|password|cvv2?|cvc|card\s+number)\b|\bcode\s+(?:we|I)\s+(?:sent|texted)\b",
    re.I,
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mask_secrets(text: str) -> str:
    """Mask secrets said aloud: digits next to a secret's name, and anything shaped like a card number.

    Reference numbers, member IDs and dates stay readable: only digit runs in a sentence that names a
    one-time code, PIN, password or card security code are masked, and card-length runs that pass Luhn.
    """
    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return "•••• " + digits[-4:] if _luhn(digits) else m.group(0)

    text = _CARD_RUN.sub(card, text)
    if not _SECRET_CONTEXT.search(text):
        return text
    return _DIGITS_RUN.sub("••••", text)
