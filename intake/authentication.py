"""Who sent this mail, as far as anyone proved it: the sender authentication verdict.

A From header is whatever the sender typed. What proves it is DKIM (RFC 6376) or SPF
(RFC 7208) aligned with the From domain, which is what DMARC (RFC 7489) checks. The desk learns
that in two ways:

* `Authentication-Results` (RFC 8601) written by the MTAs it trusts
  (`[security] trusted_authserv_ids`). Anyone can write that header into their own mail, so only
  the topmost block of them counts: from the first header naming a trusted authserv-id down to
  the next `Received:` line (the hop before the trusted MTA; milters often insert their header
  under their own MTA's Received line, which is why the block starts at the first trusted
  header, not at the top) or the next header naming someone else. Within that block, each
  method is read from the topmost header that reports it, so a forged header placed under the
  real one cannot add a "pass" the real one did not give. RFC 8601 section 5 asks the MTA to
  delete incoming headers that claim its own authserv-id (OpenDKIM does, for one); list only
  MTAs that do, and that add the header to every mail.
* Optionally (`[security] verify_dkim`) the desk verifies DKIM signatures itself with dkimpy,
  and counts a valid signature whose d= is the From domain or a parent of it (DMARC's relaxed
  alignment, read strictly: a signature of a subdomain does not vouch for its parent).

The verdict: `pass` with the From domain that was proven, `fail` when a trusted MTA said the
From domain's own checks failed (dmarc=fail, or spf=fail for an aligned envelope sender), and
`none` otherwise. A DKIM "fail" alone is not a forgery (forwarders and footers break signatures);
it counts as `none`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import authres

from models.sender_auth import NOT_CHECKED, AuthResult, SenderAuth, domain_of

log = logging.getLogger("helpdesk.authentication")

AR_HEADER = "authentication-results"
RECEIVED_HEADER = "received"
DKIM_HEADER = "dkim-signature"
WANTED_FIELDS = frozenset({AR_HEADER, RECEIVED_HEADER, DKIM_HEADER})
OURSELVES = "helpdesk"  # the `by` of a verdict from our own DKIM check

# Caps that keep a hostile header section cheap: the parser of authres rewrites its input per
# token, so its cost grows with the square of a header's length.
MAX_HEADER_BYTES = 256 * 1024
MAX_AR_HEADERS = 10
MAX_AR_LENGTH = 4096
MAX_SIGNATURES = 3
DNS_TIMEOUT = 5.0

# dkimpy's DNS interface: (name as bytes, timeout=seconds) -> the TXT record, or None.
TxtLookup = Callable[..., bytes | str | None]


@dataclass(frozen=True)
class SenderAuthConfig:
    """`[security]`: whose Authentication-Results count, our own DKIM check, staff mail."""

    # authserv-ids (RFC 8601 section 2.5) of the MTAs whose Authentication-Results are believed;
    # empty: none are.
    trusted_authserv_ids: tuple[str, ...] = ()
    # Verify DKIM signatures here too (needs DNS).
    verify_dkim: bool = False
    # Commands from technicians and coordinators only in mail authenticated for the From's domain.
    require_authenticated_staff: bool = False


def aligned(from_domain: str, domain: str) -> bool:
    """Whether a proof for `domain` vouches for mail From `from_domain`: the same domain or a parent."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or not from_domain or "." not in domain:
        return False
    return from_domain == domain or from_domain.endswith("." + domain)


def staff_refusal(config: SenderAuthConfig, auth: SenderAuth, sender: str) -> str:
    """Why a technician's or coordinator's mail must be refused under `require_authenticated_staff`;
    empty when it may be acted on."""
    if not config.require_authenticated_staff or auth.authenticates(sender):
        return ""
    return f"it is not authenticated for {domain_of(sender) or 'its sender'} ({auth.describe()})"


# -- reading the header section ------------------------------------------------------------------


def header_fields(raw: bytes, wanted: frozenset[str] = WANTED_FIELDS) -> list[tuple[str, str]]:
    """The `wanted` header fields of a raw mail in order, unfolded (RFC 5322 section 2.2.3).

    A plain scan of the header lines: these fields are ASCII, and this runs on every mail, where
    a full header parser would cost more than all the checks that follow it.
    """
    end = min(len(raw), MAX_HEADER_BYTES)
    for separator in (b"\r\n\r\n", b"\n\n"):
        found = raw.find(separator, 0, MAX_HEADER_BYTES)
        if found != -1:
            end = min(end, found)
    fields: list[tuple[str, list[str]]] = []
    keep = False
    for line in raw[:end].decode("latin-1").split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if keep and fields:
                fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        keep = bool(colon) and name in wanted
        if keep:
            fields.append((name, [value]))
    return [(name, " ".join(" ".join(parts).split())) for name, parts in fields]


def trusted_block(fields: Sequence[tuple[str, str]], trusted: Sequence[str]) -> list[Any]:
    """The topmost Authentication-Results written by a trusted authserv-id, parsed (see the module doc)."""
    block: list[Any] = []
    seen = 0
    for name, value in fields:
        if name == RECEIVED_HEADER:
            if block:
                break
            continue
        if name != AR_HEADER:
            continue
        seen += 1
        if seen > MAX_AR_HEADERS or len(value) > MAX_AR_LENGTH:
            if block:
                break
            continue
        if not _names_trusted(value, trusted):
            if block:
                break
            continue  # not worth parsing: it cannot count
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except (authres.AuthResError, ValueError, IndexError, AttributeError) as exc:
            log.debug("unreadable Authentication-Results %r: %s", value[:200], exc)
            if block:
                break
            continue
        if (header.authserv_id or "") in trusted:
            block.append(header)
        elif block:
            break
    return block


def _names_trusted(value: str, trusted: Sequence[str]) -> bool:
    """A cheap look at the authserv-id (the first word, before any version or comment) before the
    full parse: most mail carries headers of MTAs nobody here trusts."""
    first = value.split(";", 1)[0].split("(", 1)[0].split()
    return bool(first) and first[0].lower() in trusted


def _property(result: Any, kind: str, name: str) -> str:
    for prop in getattr(result, "properties", None) or ():
        if prop.type == kind and prop.name == name:
            return str(prop.value or "").strip().strip("<>").lower()
    return ""


def _topmost_per_method(block: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """(authserv-id, result) for each method, from the topmost header that reports that method."""
    taken: set[str] = set()
    for header in block:
        here: set[str] = set()
        for result in header.results:
            method = getattr(result, "method", None)
            if not method or method in taken:
                continue
            here.add(method)
            yield header.authserv_id, result
        taken |= here


def verdict_from_results(block: Sequence[Any], from_domain: str) -> SenderAuth:
    """The verdict that the trusted Authentication-Results give on mail From `from_domain`."""
    passes: list[SenderAuth] = []
    fails: list[SenderAuth] = []
    for by, result in _topmost_per_method(block):
        method, outcome = result.method, result.result
        text = str(result)
        if method == "dmarc":
            header_from = _property(result, "header", "from")
            if header_from and header_from != from_domain:
                continue
            if outcome == "pass":
                passes.append(SenderAuth(AuthResult.PASS, from_domain, "dmarc", by, text))
            elif outcome == "fail":
                fails.append(SenderAuth(AuthResult.FAIL, from_domain, "dmarc", by, text))
        elif method == "dkim":
            signer = _property(result, "header", "d") or domain_of(_property(result, "header", "i"))
            if outcome == "pass" and aligned(from_domain, signer):
                passes.append(SenderAuth(AuthResult.PASS, from_domain, "dkim", by, text))
        elif method == "spf":
            envelope = _property(result, "smtp", "mailfrom")
            envelope_domain = domain_of(envelope) if "@" in envelope else envelope
            if not aligned(from_domain, envelope_domain):
                continue
            if outcome == "pass":
                passes.append(SenderAuth(AuthResult.PASS, from_domain, "spf", by, text))
            elif outcome == "fail":
                fails.append(SenderAuth(AuthResult.FAIL, from_domain, "spf", by, text))
    order = {"dmarc": 0, "dkim": 1, "spf": 2}
    if passes:
        return min(passes, key=lambda v: order[v.method])
    if fails:
        return min(fails, key=lambda v: order[v.method])
    by = block[0].authserv_id if block else ""
    return SenderAuth(AuthResult.NONE, "", "", by, "no aligned result")


class SenderAuthenticator:
    """Gives each mail its verdict; `dns` replaces the DNS lookup of our own DKIM check."""

    def __init__(self, config: SenderAuthConfig, dns: TxtLookup | None = None) -> None:
        self.config = config
        self._trusted = tuple(t.lower() for t in config.trusted_authserv_ids)
        self._dns = dns

    @property
    def active(self) -> bool:
        """False when nothing is configured to prove a sender: every verdict would be "not checked"."""
        return bool(self._trusted) or self.config.verify_dkim

    def check(self, raw: bytes, sender: str) -> SenderAuth:
        if not self.active:
            return NOT_CHECKED
        from_domain = domain_of(sender)
        if not from_domain:
            return SenderAuth(AuthResult.NONE, reason="no From address")
        fields = header_fields(raw)
        verdict = SenderAuth(AuthResult.NONE, reason="no Authentication-Results from a trusted authserv-id")
        block = trusted_block(fields, self._trusted) if self._trusted else []
        if block:
            verdict = verdict_from_results(block, from_domain)
            if verdict.passed:
                return verdict
        if self.config.verify_dkim:
            signatures = sum(1 for name, _ in fields if name == DKIM_HEADER)
            own = self._verify_dkim(raw, from_domain, min(signatures, MAX_SIGNATURES))
            # Our own pass wins; a trusted MTA's fail or its own words stay when we found nothing.
            if own.passed or not block:
                return own
        return verdict

    def _verify_dkim(self, raw: bytes, from_domain: str, signatures: int) -> SenderAuth:
        if not signatures:
            return SenderAuth(AuthResult.NONE, by=OURSELVES, reason="no DKIM signature")
        import dkim  # dkimpy: loaded only by desks that verify DKIM themselves

        dnsfunc = self._dns or dkim.get_txt
        seen: list[str] = []
        for index in range(signatures):
            checker = dkim.DKIM(raw, timeout=DNS_TIMEOUT)
            try:
                valid = bool(checker.verify(idx=index, dnsfunc=dnsfunc))
            except (
                Exception
            ) as exc:  # dkimpy raises many kinds on hostile input; none of them proves anything
                seen.append(f"signature {index + 1}: {exc.__class__.__name__}: {exc}"[:200])
                continue
            signer = (checker.domain or b"").decode("ascii", "replace").lower()
            seen.append(f"dkim={'pass' if valid else 'fail'} header.d={signer}")
            if valid and aligned(from_domain, signer):
                return SenderAuth(
                    AuthResult.PASS, from_domain, "dkim", OURSELVES, f"dkim=pass header.d={signer}"
                )
        return SenderAuth(
            AuthResult.NONE, by=OURSELVES, reason="; ".join(seen) or "no aligned DKIM signature"
        )
