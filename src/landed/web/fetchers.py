"""Telling people from machines on the tracking endpoints. Pure: no I/O.

A pixel fetch or a followed link is evidence that a *person* saw the email
only if a person's mail client made it. Much of this traffic is machines:
image proxies that fetch on a reader's behalf (often before anyone looks),
privacy prefetch that loads every image on arrival, link scanners that
follow every URL at delivery time, and scripts. DESIGN.md: evidence from
machines must never count as ``seen`` or ``acknowledged``.

``classify`` looks only at what the request says about itself (method,
``User-Agent``, prefetch hints, the network the address belongs to). It errs
towards "machine": a person misclassified loses a ``seen`` that the
acknowledgement page can still give, while a machine counted as a person would
be a false proof. User agents can be forged, so a "person" verdict is only ever
weak evidence; the acknowledgement POST is the strong one.

Each rule names where its pattern comes from.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    """What the classifier is shown of one HTTP request."""

    method: str
    user_agent: str
    #: The client address as the server saw it (behind a reverse proxy, run the
    #: server with trusted proxy headers so this is the real client).
    address: str | None
    #: Lower-cased request headers that hint at prefetching (see ``_PREFETCH``).
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A request judged: by a machine or not, which one, and why."""

    machine: bool
    #: A short stable name of the fetcher (``google-image-proxy``), or None.
    fetcher: str | None
    #: Why, in words, for the evidence's detail.
    reason: str
    #: The network class of the client address (see ``network_class``).
    network: str


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    reason: str


def _rule(name: str, pattern: str, reason: str) -> _Rule:
    return _Rule(name, re.compile(pattern, re.IGNORECASE), reason)


# User-Agent rules, first match wins. Sources:
_RULES: tuple[_Rule, ...] = (
    # Gmail fetches every remote image through its proxy and caches it, and has
    # fetched images without the message being opened ("via ggpht.com
    # GoogleImageProxy"): https://gmail.googleblog.com/2013/12/images-now-showing.html,
    # https://www.gmass.co/blog/false-opens-in-gmail/
    _rule(
        "google-image-proxy",
        r"GoogleImageProxy|ggpht\.com",
        "Gmail's image proxy (fetches and caches images, also ahead of any reading)",
    ),
    # Yahoo Mail's content fetch proxy ("YahooMailProxy; https://help.yahoo.com/kb/
    # yahoo-mail-proxy-SLN28749.html"), documented at that URL.
    _rule("yahoo-mail-proxy", r"YahooMailProxy", "Yahoo Mail's content fetch proxy"),
    # Apple Mail Privacy Protection preloads all remote content through Apple's
    # proxies when mail arrives, with the bare user agent "Mozilla/5.0":
    # https://help.socketlabs.com/docs/identifying-apple-mpp-opens-in-notification-api-events
    _rule(
        "apple-mail-privacy",
        r"^Mozilla/5\.0$",
        "Apple Mail Privacy Protection preload (bare 'Mozilla/5.0')",
    ),
    # Microsoft Office fetches a link itself before handing it to the browser:
    # "Microsoft Office Existence Discovery" (HEAD, https://learn.microsoft.com/en-us/
    # archive/blogs/vsofficedeveloper/description-of-the-microsoft-office-existence-
    # discovery-protocol-2), "Microsoft Office Protocol Discovery" (OPTIONS) and a GET
    # whose agent has "ms-office" (https://webmasters.stackexchange.com/questions/71112).
    # BingPreview renders page previews for Bing and Outlook.com.
    _rule(
        "microsoft-link-check",
        r"Microsoft Office (Existence|Protocol) Discovery|\bms-office\b|BingPreview|"
        r"Microsoft-WebDAV-MiniRedir|SkypeUriPreview",
        "Microsoft link check or preview (Office discovery request, BingPreview)",
    ),
    # Mail security gateways that follow links on delivery; each names itself in
    # its scanner's user agent (observed strings collected by ESPs, e.g.
    # https://www.gmass.co/blog/false-opens-in-gmail/ and
    # https://www.suped.com/knowledge/email-deliverability/technical/
    # what-methods-do-esps-and-smtp-providers-use-to-identify-apple-mpp-and-googleproxyimages)
    _rule("barracuda", r"Barracuda", "Barracuda link scanner"),
    _rule("proofpoint", r"Proofpoint", "Proofpoint URL Defense scanner"),
    _rule("mimecast", r"Mimecast", "Mimecast URL protection scanner"),
    _rule(
        "security-scanner",
        r"Forcepoint|Symantec|McAfee|IronPort|Sophos|Trend ?Micro|Cisco|Cloudmark|"
        r"Fortinet|FortiGuard|Zscaler|Check ?Point",
        "mail or web security scanner",
    ),
    # Link-preview robots of chat and social apps (a link pasted elsewhere):
    # each documents its user agent, e.g. https://api.slack.com/robots,
    # https://developers.facebook.com/docs/sharing/webmasters/web-crawlers
    _rule(
        "link-preview",
        r"Slackbot|facebookexternalhit|Twitterbot|LinkedInBot|Discordbot|TelegramBot|"
        r"WhatsApp|SkypeUriPreview|Applebot",
        "link preview robot",
    ),
    # HTTP libraries and tools, by their default user agents: curl(1) "curl/VERSION",
    # Wget "Wget/VERSION", requests "python-requests/X", urllib "Python-urllib/X",
    # httpx "python-httpx/X", aiohttp "Python/3.x aiohttp/X", Go "Go-http-client/1.1",
    # Java "Java/1.x", OkHttp "okhttp/X", Apache HttpClient, libwww-perl, node-fetch,
    # axios; headless browsers announce "HeadlessChrome" (Chromium's headless mode).
    _rule(
        "http-client",
        r"^(curl|Wget|python-requests|Python-urllib|python-httpx|Go-http-client|Java|"
        r"okhttp|Apache-HttpClient|libwww-perl|node-fetch|axios|PycURL|aiohttp)/|"
        r"\baiohttp/|HeadlessChrome|PhantomJS|Puppeteer|Playwright",
        "HTTP library or headless browser, not a mail client",
    ),
    # Everything that calls itself a robot (RFC 9309 crawlers, monitors).
    _rule(
        "robot",
        r"bot\b|bot/|crawler|spider|\bscan(ner)?\b|monitor|\bpreview\b|prefetch",
        "calls itself a robot, crawler, scanner or previewer",
    ),
)

# Prefetch hints: Chromium and the Fetch standard send "Sec-Purpose: prefetch"
# (https://fetch.spec.whatwg.org/#sec-purpose-header); older browsers "Purpose:
# prefetch" or Firefox's "X-Moz: prefetch"
# (https://developer.mozilla.org/en-US/docs/Web/HTTP/Link_prefetching_FAQ).
_PREFETCH = ("sec-purpose", "purpose", "x-moz", "x-purpose")

# Networks whose fetches are machines whatever they claim. 17.0.0.0/8 is Apple's
# (IANA IPv4 address space registry, https://www.iana.org/assignments/ipv4-address-space);
# Mail Privacy Protection preloads come from Apple's proxies.
_APPLE = (ipaddress.ip_network("17.0.0.0/8"),)


#: Private-use space: RFC 1918, RFC 6598 (carrier-grade NAT), RFC 4193 (unique local).
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def network_class(address: str | None) -> str:
    """A coarse class of a client address, kept instead of the address itself.

    ``loopback``, ``link-local``, ``private`` (RFC 1918, RFC 6598, RFC 4193),
    ``reserved`` (other space that is not globally reachable, RFC 6890),
    ``apple`` (17.0.0.0/8), ``public``, or ``unknown``.
    """
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if any(ip.version == net.version and ip in net for net in _PRIVATE):
        return "private"
    if not ip.is_global:
        return "reserved"
    if any(ip.version == net.version and ip in net for net in _APPLE):
        return "apple"
    return "public"


def classify(request: Request) -> Verdict:
    """Whether a tracking request came from a machine, and which."""
    network = network_class(request.address)
    method = request.method.upper()
    if method == "HEAD":
        # A HEAD transfers no content (RFC 9110 §9.3.2): nothing was displayed.
        return Verdict(True, "head-request", "HEAD request (no content fetched)", network)
    for name in _PREFETCH:
        if "prefetch" in request.headers.get(name, "").lower():
            return Verdict(True, "prefetch", f"browser prefetch ({name} header)", network)
    agent = request.user_agent.strip()
    if not agent:
        return Verdict(True, "no-user-agent", "no User-Agent: not a mail client", network)
    for rule in _RULES:
        if rule.pattern.search(agent):
            return Verdict(True, rule.name, rule.reason, network)
    if network == "apple":
        return Verdict(
            True, "apple-mail-privacy", "from Apple's network (Mail Privacy Protection)", network
        )
    return Verdict(False, None, "a mail client or browser", network)
