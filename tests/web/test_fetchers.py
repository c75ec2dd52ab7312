"""The machine-fetcher classifier (pure): each rule, the network classes, and people."""

from __future__ import annotations

import subprocess
import sys

import pytest

from landed.web.fetchers import Request, Verdict, classify, network_class

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0"
OUTLOOK = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0"
)
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)


def judge(
    user_agent: str, address: str = "81.2.69.160", method: str = "GET", **headers: str
) -> Verdict:
    return classify(Request(method, user_agent, address, headers))


@pytest.mark.parametrize(
    ("user_agent", "fetcher"),
    [
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            "google-image-proxy",
        ),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "yahoo-mail-proxy",
        ),
        ("Mozilla/5.0", "apple-mail-privacy"),
        ("Microsoft Office Existence Discovery", "microsoft-link-check"),
        (
            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0; ms-office)",
            "microsoft-link-check",
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) "
            "BingPreview/1.0b",
            "microsoft-link-check",
        ),
        ("Barracuda Sentinel (EE)", "barracuda"),
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "proofpoint"),
        ("Mimecast URL Protect", "mimecast"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link-preview"),
        ("curl/8.5.0", "http-client"),
        ("python-requests/2.32.3", "http-client"),
        ("Python-urllib/3.11", "http-client"),
        ("Go-http-client/1.1", "http-client"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/131.0.0.0 Safari/537.36",
            "http-client",
        ),
        ("Mozilla/5.0 (compatible; SomeCrawler/2.1; +https://crawler.example)", "robot"),
        ("", "no-user-agent"),
        ("   ", "no-user-agent"),
    ],
)
def test_known_machine_fetchers(user_agent: str, fetcher: str) -> None:
    verdict = judge(user_agent)
    assert verdict.machine and verdict.fetcher == fetcher, verdict
    assert verdict.reason


@pytest.mark.parametrize("user_agent", [FIREFOX, OUTLOOK, APPLE_MAIL, "Thunderbird/128.3.0"])
def test_mail_clients_and_browsers_are_people(user_agent: str) -> None:
    verdict = judge(user_agent)
    assert not verdict.machine and verdict.fetcher is None
    assert verdict.network == "public"


def test_apples_network_is_a_machine_whatever_it_claims() -> None:
    verdict = judge(APPLE_MAIL, address="17.58.100.1")
    assert verdict.machine and verdict.fetcher == "apple-mail-privacy"
    assert verdict.network == "apple"


def test_head_requests_and_prefetch_hints_are_machines() -> None:
    assert judge(FIREFOX, method="HEAD").fetcher == "head-request"
    assert judge(FIREFOX, **{"sec-purpose": "prefetch;prerender"}).fetcher == "prefetch"
    assert judge(FIREFOX, **{"x-moz": "prefetch"}).fetcher == "prefetch"
    assert not judge(FIREFOX, **{"sec-purpose": ""}).machine


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.20.0.1", "private"),
        ("192.168.1.10", "private"),
        ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.0.5", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("192.0.2.1", "reserved"),
        ("17.0.0.1", "apple"),
        ("::ffff:17.1.2.3", "apple"),
        ("81.2.69.160", "public"),
        ("2a00:1450:4001:81b::200e", "public"),
        ("[2a00:1450:4001:81b::200e]", "public"),
        ("not an address", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_network_classes(address: str | None, expected: str) -> None:
    assert network_class(address) == expected


def test_the_classifier_is_pure() -> None:
    code = (
        "import sys, landed.web.fetchers\n"
        "bad = [m for m in ('fastapi', 'starlette', 'sqlalchemy', 'landed.store', 'socket') "
        "if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
