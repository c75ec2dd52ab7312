"""Dialect readers and provider rules on small synthetic messages written for these tests.

Each message imitates how one MTA or provider words its bounces (the module
docstrings name the source); the addresses and hosts are invented.
"""

from __future__ import annotations

from landed.parse import Kind, parse


def _mail(headers: str, body: str) -> bytes:
    return (headers.strip("\n") + "\n\n" + body.lstrip("\n")).encode()


def test_einsundeins_reads_each_address_and_its_reason() -> None:
    raw = _mail(
        """
From: "Mail Delivery System" <mailer-daemon@kundenserver.example>
To: sender@example.jp
Subject: Mail delivery failed: returning message to sender
""",
        """
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of
its recipients. This is a permanent error. The following address(es) failed:

kijitora@example.org:
SMTP error from remote server for RCPT TO command, host: mx.example.org (192.0.2.25) reason: 550 5.1.1 <kijitora@example.org>... User Unknown

neko@example.org:
SMTP error from remote server for TEXT command, host: mx.example.org (192.0.2.25) reason: 552 5.2.2 Mailbox full

--- The header of the original message is following. ---

Message-ID: <abc@example.jp>
Subject: test
""",  # noqa: E501 - one line per recipient, as 1&1 writes them
    )
    report = parse(raw)
    assert report.dialect == "einsundeins"
    first, second = report.recipients
    assert (first.recipient, first.reason, first.status, first.smtp_command) == (
        "kijitora@example.org",
        "userunknown",
        "5.1.1",
        "RCPT",
    )
    assert first.remote_mta == "mx.example.org"
    assert (second.reason, second.smtp_command) == ("mailboxfull", "DATA")
    assert report.original_message_id == "<abc@example.jp>"


def test_einsundeins_reason_shared_by_an_address_list() -> None:
    raw = _mail(
        """
From: "Mail Delivery System" <mailer-daemon@kundenserver.example>
Subject: Mail delivery failed: returning message to sender
""",
        """
This message was created automatically by mail delivery software.

The following address failed:

general@example.eu

For the following reason:

Mail size limit exceeded. For explanation visit
http://postmaster.example/en/error-messages

--- The header of the original message is following. ---

Subject: big
""",
    )
    (only,) = parse(raw).recipients
    assert (only.recipient, only.reason) == ("general@example.eu", "mesgtoobig")


def test_courier_transcript_gives_reply_and_command() -> None:
    raw = _mail(
        """
From: Courier mail server at mx.example.org <postmaster@example.org>
Subject: NOTICE: mail delivery status.
Message-ID: <courier.4D02EDDF.0000C65A@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="=_courier_0"
""",
        """
--=_courier_0
Content-Type: text/plain; charset=us-ascii

This is a delivery status notification from mx.example.org,
running the Courier mail server, version 0.65.2.

                           UNDELIVERABLE MAIL

Your message to the following recipients cannot be delivered:

<kijitora@example.net>:
    mx.example.net [192.0.2.95]:
>>> RCPT TO:<kijitora@example.net>
<<< 550 5.1.1 <kijitora@example.net>... User Unknown

<neko@example.cat>:
<<< No such domain.

--=_courier_0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; kijitora@example.net
Action: failed
Status: 5.0.0
Remote-MTA: dns; mx.example.net [192.0.2.95]
Diagnostic-Code: unknown; 550 5.1.1 <kijitora@example.net>... User Unknown

Final-Recipient: rfc822; neko@example.cat
Action: failed
Status: 5.0.0
Diagnostic-Code: unknown; No such domain.

--=_courier_0--
""",
    )
    report = parse(raw)
    assert report.dialect == "courier"
    user, domain = report.recipients
    assert (user.reason, user.status, user.smtp_command, user.remote_mta) == (
        "userunknown",
        "5.1.1",
        "RCPT",
        "mx.example.net",
    )
    assert user.diagnostic == "550 5.1.1 <kijitora@example.net>... User Unknown"
    assert (domain.reason, domain.hard) == ("hostunknown", True)


def test_dsn_fields_before_final_recipient_stay_with_it() -> None:
    # Facebook's and Oracle Messaging Server's DSNs put Action/Status/Diagnostic-Code
    # before Final-Recipient in each block.
    raw = _mail(
        """
From: Mail Delivery Subsystem <mailer-daemon@mx.example.com>
Subject: Delivery Notification: Delivery has failed
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"
""",
        """
--b
Content-Type: text/plain

Your message cannot be delivered to the following recipients.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Action: failed
Status: 5.2.2
Final-Recipient: rfc822; first@example.org
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

Action: failed
Status: 5.1.1
Original-Recipient: rfc822; second@example.org
Final-Recipient: rfc822; second@example.org
Diagnostic-Code: smtp; 550 5.1.1 No such user

--b--
""",
    )
    first, second = parse(raw).recipients
    assert (first.recipient, first.status, first.reason) == (
        "first@example.org",
        "5.2.2",
        "mailboxfull",
    )
    assert (second.recipient, second.status, second.reason) == (
        "second@example.org",
        "5.1.1",
        "userunknown",
    )


def test_powermta_bounce_category_names_the_reason() -> None:
    raw = _mail(
        """
From: mailer-daemon@mta.example.net
Subject: Delivery report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"
""",
        """
--r

Hello, this is the mail server on mta.example.net.

<someone@example.com> delivery failed; will not continue trying

--r
Content-Type: message/delivery-status

Reporting-MTA: dns;mta.example.net
X-PowerMTA-VirtualMTA: example.net

Final-Recipient: rfc822;someone@example.com
Action: failed
Status: 5.0.0 (undefined status)
Remote-MTA: dns;mx.example.com (192.0.2.123)
Diagnostic-Code: smtp;554 delivery error: this account is not here [0]
X-PowerMTA-BounceCategory: bad-mailbox

--r--
""",
    )
    (only,) = parse(raw).recipients
    assert (only.reason, only.hard, only.remote_mta) == ("userunknown", True, "mx.example.com")


def test_spectrum_aup_code() -> None:
    raw = _mail(
        """
From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="p"
""",
        """
--p
Content-Type: text/plain

This is the mail system at host mail.example.org.

<cat@charter.net>: host mx.charter.net[192.0.2.7] said: 554 5.7.1 Your IP
    address has been blocked - AUP#I-1000 (in reply to MAIL FROM command)

--p
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org

Final-Recipient: rfc822; cat@charter.net
Action: failed
Status: 5.7.1
Remote-MTA: dns; mx.charter.net
Diagnostic-Code: smtp; 554 5.7.1 Your IP address has been blocked - AUP#I-1000

--p--
""",
    )
    (only,) = parse(raw).recipients
    assert only.reason == "blocked"


def test_exchange_component_name_decides() -> None:
    raw = _mail(
        """
From: postmaster@corp.example.com
Subject: Undeliverable: quarterly report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="x"
""",
        """
--x
Content-Type: text/plain

Delivery has failed to these recipients or distribution lists:

boss@corp.example.com

--x
Content-Type: message/delivery-status

Reporting-MTA: dns;exch01.corp.example.com

Final-Recipient: rfc822;boss@corp.example.com
Action: failed
Status: 5.2.3
Diagnostic-Code: smtp;550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient

--x--
""",
    )
    (only,) = parse(raw).recipients
    assert only.reason == "exceedlimit"


def test_mailmarshal_lists_recipients_after_the_reason() -> None:
    raw = _mail(
        """
From: postmaster@relay.example.com
Subject: Undeliverable Mail: "Quarterly numbers"
""",
        """
Your message:
   From:    sender@example.com
   Subject: Quarterly numbers

Could not be delivered because of

550 5.1.1 User unknown

The following recipients were affected:
    nobody@example.net
    noone@example.net



Additional Information
======================
Original Sender:    <sender@example.com>
Remote-MTA:         <192.0.2.1>
Reporting-MTA:      <relay.example.com>
""",
    )
    report = parse(raw)
    assert report.dialect == "mailmarshal"
    assert [(r.recipient, r.reason, r.status) for r in report.recipients] == [
        ("nobody@example.net", "userunknown", "5.1.1"),
        ("noone@example.net", "userunknown", "5.1.1"),
    ]
    assert report.recipients[0].reporting_mta == "relay.example.com"


def test_plain_notice_without_dsn_names_target_address() -> None:
    # A human-readable notice: "reject reason:" and "target mail address:" lines.
    raw = _mail(
        """
From: postmaster@mail.example.de
To: bounces@example.net
Subject: email bounce notification
Auto-Submitted: auto-replied
""",
        """
This message is to inform you that an email you sent was rejected.

reject reason: Mailbox full
target mail address: someone@example.de

------------------------------------------------------------------------
bounced E-Mail:

From: Sender <sender@example.net>
To: someone@example.de
""",
    )
    report = parse(raw)
    assert report.kind is Kind.BOUNCE
    (only,) = report.recipients
    assert (only.recipient, only.reason) == ("someone@example.de", "mailboxfull")


def test_barracuda_dsn_with_its_own_preamble() -> None:
    # Barracuda's "Message you sent blocked by our bulk email filter": a DSN whose
    # text part carries the explanation before the fields.
    raw = _mail(
        """
From: Barracuda <postmaster@filter.example.org>
Subject: **Message you sent blocked by our bulk email filter**
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"
""",
        """
--b1
Content-Type: text/plain; charset=us-ascii

Your message to: kijitora@example.org
was blocked by our Spam Firewall. The email you sent with the following
subject has NOT BEEN DELIVERED:

Subject: Nyaan

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; filter.example.org

Final-Recipient: rfc822; kijitora@example.org
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp; 550 5.7.1 Message content rejected, UBE, id=12345-01-1

--b1--
""",
    )
    (only,) = parse(raw).recipients
    assert (only.recipient, only.status, only.reason) == (
        "kijitora@example.org",
        "5.7.1",
        "spamdetected",
    )
