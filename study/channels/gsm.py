"""How many SMS segments a text costs: GSM-7 when every character is in the GSM 03.38
alphabet (160 per single message, 153 per part), UCS-2 otherwise (70, 67 per part).

Long codes send about one segment per second, so the dispatcher's rate limit counts segments.
"""

from __future__ import annotations

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table, each sent as an escape plus the character.
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(body: str) -> bool:
    """True when `body` can be sent in the 7-bit GSM alphabet."""
    return all(char in GSM_BASIC or char in GSM_EXTENDED for char in body)


def sms_segments(body: str) -> int:
    """The number of segments `body` is billed and rate-limited as (at least 1)."""
    if is_gsm7(body):
        septets = sum(2 if char in GSM_EXTENDED else 1 for char in body)
        return 1 if septets <= 160 else -(-septets // 153)
    # UCS-2 counts UTF-16 code units: characters outside the BMP (emoji) take two.
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)
