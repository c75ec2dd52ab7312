"""Phrases naming the reasons about the *parties*: the recipient (unknown,
full, suspended, moved), the sender (rejected, authentication), the sending
host (blocked, reputation, reverse DNS, rate limits, relaying).

Collected from real bounces: most from the MTAs' source or documentation and
from the public Sisimai rule set (BSD-2, whose reason names and many of whose
phrases this table shares), the rest from the bounce corpus. Where a phrase
belongs to one system, the comment names it. See :mod:`landed.parse.reasons`.
"""

from __future__ import annotations

from landed.parse.matching import Phrases

__all__ = ["PARTY_PHRASES"]

PARTY_PHRASES: dict[str, Phrases] = {
    # ---------------------------------------------------------------- recipient
    "userunknown": Phrases(
        substrings=(
            "#5.1.1 bad address",
            "550 address invalid",
            "5.1.0 address rejected.",
            "address does not exist",
            "address not present in directory",
            "address unknown",
            "can't accept user",
            "does not exist.",
            "destination addresses were unknown",
            "destination server rejected recipients",
            "email address does not exist",
            "email address could not be found",
            "invalid address",
            "invalid mailbox",
            "invalid mailbox path",
            "invalid recipient",
            "is not a known user",
            "is not a valid mailbox",
            "is not an active address at this host",
            "mailbox does not exist",
            "mailbox invalid",
            "mailbox is inactive",
            "mailbox is unavailable",
            "mailbox not present",
            "mailbox not found",
            "mailbox unavaiable",
            "nessun utente simile in questo indirizzo",  # Italian (Libero, Tiscali)
            "no account by that name here",
            "no existe dicha persona",  # Spanish
            "no existe ese usuario ",
            "no mail box available for this user",
            "no mailbox by that name is currently available",
            "no mailbox found",
            "no such address here",
            "no such mailbox",
            "no such person at this address",
            "no such recipient",
            "no such user",
            "no thank you rejected: account unavailable",
            "no valid recipients, bye",  # qmail-smtpd patches
            "not a valid recipient",
            "not a valid user here",
            "not a local address",
            "not email addresses",
            "recipient address rejected. (in reply to rcpt to command)",
            "recipient address rejected: access denied",  # Postfix + Microsoft 365 (DBEB)
            "recipient address rejected: invalid user",
            "recipient address rejected: invalid-recipient",
            "recipient address rejected: unknown user",
            "recipient address rejected: userunknown",
            "recipient does not exist",
            "recipient is not accepted",
            "recipient is not local",
            "recipient not exist",
            "recipient not found",
            "recipient not ok",
            "recipient refuses to accept your mail",
            "recipient unknown",
            "requested action not taken: mailbox unavailable",
            "resolver.adr.recipient notfound",  # Exchange / Office 365 NDR
            "sorry, user unknown",
            "sorry, badrcptto",  # qmail badrcptto patch
            "sorry, no mailbox here by that name",  # qmail / vpopmail
            "sorry, your envelope recipient has been denied",
            "that domain or user isn't in my list of allowed rcpthosts",  # qmail rcpthosts
            "the email account that you tried to reach does not exist",  # Gmail
            "the following recipients was undeliverable",
            "the user's email name is not found",
            "there is no one at this address",
            "this address no longer accepts mail",
            "this email address is wrong or no longer valid",
            "this recipient is in my badrecipientto list",
            "this recipient is not in my validrcptto list",  # qmail validrcptto patch
            "this spectator does not exist",
            "unknown mailbox",
            "unknown recipient",
            "unknown user",
            "user does not exist",
            "user missing home directory",
            "user not active",
            "user not exist",
            "user not found",
            "user not known",
            "user unknown",
            "utilisateur inconnu !",  # French (Orange)
            "vdeliver: invalid or unknown virtual user",  # vmailmgr
            "weil die adresse nicht gefunden wurde oder keine e-mails empfangen kann",  # German
            "your envelope recipient is in my badrcptto list",
        ),
        ordered=(
            ("<", "> not found"),
            ("<", ">... blocked by "),
            ("account ", " does not exist at the organization"),  # Office 365
            ("adresse d au moins un destinataire invalide. invalid recipient.", "416"),  # Orange
            ("adresse d au moins un destinataire invalide. invalid recipient.", "418"),
            ("bad", "recipient"),
            ("mailbox ", "does not exist"),
            ("mailbox ", "unavailable or access denied"),
            ("no ", " in name directory"),
            ("non", "existent user"),
            ("rcpt <", " does not exist"),
            ("rcpt (", "t exist "),
            ("recipient ", " was not found in"),
            ("recipient address rejected: user ", "  does not exist"),
            ("recipient address rejected: user unknown in ", "  table"),
            ("said: 550", "5.1.1 ", " user unknown "),
            ("this user doesn't have a ", " account"),  # Yahoo
            ("unknown e", "mail address"),
            ("unknown local", "part"),
            ("user ", " was not found"),
            ("user ", " does not exist"),
            ("user (", ") unknown"),
        ),
    ),
    "mailboxfull": Phrases(
        substrings=(
            "452 insufficient disk space",
            "account disabled temporarly for exceeding receiving limits",
            "boite du destinataire pleine",  # French (Orange, La Poste)
            "exceeded storage allocation",
            "full mailbox",
            "mailbox exceeds allowed size",
            "mailbox size limit exceeded",
            "mailbox would exceed maximum allowed storage",
            "mailfolder is full",
            "no space left on device",
            "not sufficient disk space",
            "quota violation for",
            "too much mail data",  # NTT docomo
            "user has exceeded quota, bouncing mail",
            "user has too many messages on the server",
            "user's space has been used up",
        ),
        ordered=(
            ("account is ", " quota"),
            ("disk", "quota"),
            ("enough ", " space"),
            ("mailbox ", "exceeded", " limit"),
            ("mailbox ", "full"),
            ("mailbox ", "quota"),
            ("maildir ", "quota"),
            ("over ", "quota"),
            ("quota ", "exceeded"),
        ),
    ),
    "suspend": Phrases(
        substrings=(
            " is currently suspended",
            " temporary locked",
            "archived recipient",
            "boite du destinataire archivee",  # French (Orange)
            "email account that you tried to reach is disabled",  # Gmail
            "has been suspended",
            "inactive account",
            "invalid/inactive user",
            "is a deactivated mailbox",  # Tencent QQ
            "is unavailable: user is terminated",
            "mailbox currently suspended",
            "mailbox disabled",
            "mailbox is frozen",
            "mailbox unavailable or access denied",
            "recipient rejected: temporarily inactive",
            "recipient suspend the service",
            "the email account that you tried to reach is inactive",  # Gmail
            "this account has been disabled or discontinued",  # Yahoo
            "this account has been temporarily suspended",
            "this address no longer accepts mail",
            "this mailbox is disabled",
            "user or domain is disabled",
            "user suspended",  # NetEase (163.com)
            "vdelivermail: account is locked email bounced",  # vpopmail
        ),
    ),
    "hasmoved": Phrases(substrings=(" has been replaced by ",)),
    "filtered": Phrases(
        substrings=(
            "account is protected by",
            "bounced address",  # SendGrid: the address bounced before
            "has restricted sms e-mail",  # AT&T
            "is not accepting any mail",
            "message filtered",
            "message rejected due to user rules",
            "not found recipient account",
            "recipient id refuse to receive mail",  # Willcom
            "recipient is only accepting mail from specific email addresses",  # AOL
            "refused due to recipient preferences",  # Facebook
            "user not found",  # Mail.ru filter
            "user refuses to receive this mail",
            "user reject",
            "you have been blocked by the recipient",
        ),
    ),
    "hostunknown": Phrases(
        substrings=(
            "domain does not exist",
            "domain is not reachable",
            "domain must exist",
            "host or domain name not found",
            "host unknown",
            "host unreachable",
            "illegal host/domain name found",  # Oracle Communications Messaging Server
            "mail domain mentioned in email address is unknown",
            "name or service not known",
            "no such domain",
            "recipient address rejected: unknown domain name",
            "recipient domain must exist",
            "the account or domain may not exist",
            "unknown host",
            "unroutable address",
            "unrouteable address",  # Exim
        ),
        ordered=(("553 ", " does not exist"),),
    ),
    # ------------------------------------------------------------------ sender
    "rejected": Phrases(
        substrings=(
            "access denied (in reply to mail from command)",
            "access denied (sender blacklisted)",
            "address rejected",
            "administrative prohibition",
            "batv failed to verify",  # SonicWall
            "batv validation failure",  # SonicWall
            "backscatter protection detected an invalid or expired email address",  # MDaemon
            "because the sender isn't on the recipient's list of senders to accept mail from",
            "bogus mail from",  # IMail: empty sender
            "can't determine purported responsible address",
            "connections not accepted from servers without a valid sender domain",
            "denied [bouncedeny]",  # McAfee
            "denied by secumail valid-address-filter",
            "delivery not authorized, message refused",
            "does not exist e2110",
            "domain of sender address ",
            "email address is on senderfilterconfig list",
            "emetteur invalide",  # French
            "empty envelope senders not allowed",
            "envelope blocked - ",
            "error: no third-party dsns",  # SpamWall: empty sender
            "from: domain is invalid. please provide a valid from:",
            "fully qualified email address required",  # McAfee
            "invalid domain, see <url:",
            "invalid sender",
            "is not a registered gateway user",
            "mail from not owned by user",
            "message rejected: email address is not verified",  # Amazon SES
            "mx records for ",
            "null sender is not allowed",
            "recipient addresses rejected : access denied",
            "recipient not accepted. (batv: no tag",
            "returned mail not accepted here",
            "rfc 1035 violation: recursive cname records for",
            "rule imposed mailbox access for",  # MailMarshal
            "sending this from a different address or alias using the ",
            "sender address has been blacklisted",
            "sender email address rejected",
            "sender is in my black list",
            "sender is spammer",
            "sender not pre-approved",
            "sender rejected",
            "sender domain is empty",
            "sender verify failed",  # Exim callout
            "sender was rejected",  # qmail
            "spam reporting address",  # SendGrid: the address complained before
            "syntax error: empty email address",
            "the message has been rejected by batv defense",
            "this server does not accept mail from",
            "transaction failed unsigned dsn for",
            "unroutable sender address",
            "you are not allowed to post to this mailing list",
            "you are sending to/from an address that has been blacklisted",
            "your access to submit messages to this e-mail system has been rejected",
            "your email address has been blacklisted",  # MessageLabs
        ),
        unless=(
            "5.1.0 address rejected",
            "recipient address rejected",
            "sender ip address rejected",
        ),
    ),
    "authfailure": Phrases(
        substrings=(
            "//spf.pobox.com",
            "bad spf records for",
            "dmarc policy",
            "doesn't meet the required authentication level",
            "please inspect your spf settings",
            "sender policy framework (spf) fail",
            "sender policy framework violation",
            "spf (sender policy framework) domain authentication fail",  # Symantec.cloud
            "spf check: fail",
            "the 5322.from address doesn't meet the authentication "
            "requirements defined for the sender",
        ),
        ordered=(
            (" is not allowed to send mail.", "_401"),  # Orange
            ("is not allowed to send from <", " per it's spf record"),
        ),
    ),
    # ------------------------------------------------------ sending host / IP
    "blocked": Phrases(
        substrings=(
            " said: 550 blocked",
            "//www.spamcop.net/bl.",
            "bad sender ip address",
            "banned sending ip",  # Office 365
            "blacklisted by",
            "blocked using ",
            "blocked - see http",
            "dnsbl:attrbl",
            "client host rejected: abus detecte gu_eib_02",  # SFR
            "client host rejected: abus detecte gu_eib_04",  # SFR
            "client host rejected: may not be mail exchanger",
            "client host rejected: was not authenticated",  # Microsoft
            "confirm this mail server",
            "connection dropped",
            "connection refused by",
            "connection reset by peer",
            "connection was dropped by remote host",
            "connections not accepted from ip addresses on spamhaus xbl",
            "currently sending spam see: ",
            "domain does not exist:",
            "dynamic/zombied/spam ips blocked",
            "error: no valid recipients from ",
            "esmtp not accepting connections",  # iCloud
            "extreme bad ip profile",
            "go away",
            "helo command rejected:",
            "host network not allowed",
            "hosts with dynamic ip",
            "invalid ip for sending mail of domain",
            "is in a black list",
            "is not allowed to send mail from",
            "mailfrom domain is listed in spamhaus",
            "no access from mail server",
            "no matches to nameserver query",
            "not currently accepting mail from your ip",  # Microsoft
            "part of their network is on our block list",
            "please use the smtp server of your isp",
            "refused - see http",
            "rejected - multi-blacklist",  # junkemailfilter.com
            "rejected because the sending mta or the sender has not passed validation",
            "rejecting open proxy",  # Sendmail srvrsmtp.c
            "sender ip address rejected",
            "server access forbidden by your ip ",
            "service not available, closing transmission channel",
            "smtp error from remote mail server after initial connection:",  # Exim
            "sorry, that domain isn't in my list of allowed rcpthosts",
            "sorry, your remotehost looks suspiciously like spammer",
            "temporarily deferred due to unexpected volume or user complaints",
            "to submit messages to this e-mail system has been rejected",
            "too many spams from your ip",  # free.fr
            "too many unwanted messages have been sent from the following ip address above",
            "was blocked by ",
            "we do not accept mail from dynamic ips",  # Mail.ru
            "you are not allowed to connect",
            "you are sending spam",
            "your ip address is listed in the rbl",
            "your network is temporary blacklisted",
            "your server requires confirmation",
        ),
        ordered=(
            ("(", "@", ":blocked)"),
            ("access from ip address ", " blocked"),
            ("client host ", " blocked using"),
            ("connections will not be accepted from ", " because the ip is in spamhaus's list"),
            ("dnsbl:rbl ", ">_is_blocked"),
            ("email blocked by ", ".barracudacentral.org"),
            ("email blocked by ", "spamhaus"),
            ("host ", " refused to talk to me: ", " blocked"),
            ("ip ", " is blocked by earthlink"),  # EarthLink
            ("is in an ", "rbl on "),
            ("mail server at ", " is blocked"),
            ("mail from ", " refused:"),
            ("mail from ", " refused, see ", "orbs"),
            ("message from ", " rejected based on blacklist"),
            ("messages from ", " temporarily deferred due to user complaints"),  # Yahoo
            ("server ip ", " listed as abusive"),
            ("sorry! your ip address", " is blocked by rbl"),  # junkemailfilter.com
            ("the domain ", " is blacklisted"),
            ("the email ", " is blacklisted"),
            ("the ip", " is blacklisted"),
            ("veuillez essayer plus tard. service refused, please try later. ", "103"),  # Orange
            ("veuillez essayer plus tard. service refused, please try later. ", "510"),
            ("your access ip", " has been rejected"),
            ("your sender's ip address is listed at ", ".abuseat.org"),
        ),
    ),
    "badreputation": Phrases(
        substrings=(
            "a poor email reputation score",
            "has been temporarily rate limited due to ip reputation",
            "ip/domain reputation problems",
            "likely suspicious due to the very low reputation",  # Gmail
            "none/bad reputation",  # T-Online
            "temporarily deferred due to unexpected volume or user complaints",  # Yahoo
            "the sending mta's poor reputation",
        ),
    ),
    "requireptr": Phrases(
        substrings=(
            "access denied. ip name lookup failed",
            "all mail servers must have a ptr record with a valid reverse dns entry",
            "bad dns ptr resource record",
            "cannot find your hostname",
            "cannot resolve your address.",
            # Postfix reject_unknown_client_hostname
            "client host rejected: cannot find your hostname",
            "fix reverse dns for ",
            "ips with missing ptr records",
            "no ptr record found.",
            "please get a custom reverse dns name from your isp for your host",
            "ptr record setup",
            "reverse dns failed",
            "reverse dns required",
            "sender ip reverse lookup rejected",
            "the ip address sending this message does not have a ptr record setup",  # Gmail
            "the corresponding forward dns entry does not point to the sending ip",  # Gmail
            "this system will not accept messages from servers/devices with no reverse dns",
            "unresolvable relay host name",
            "we do not accept mail from hosts with dynamic ip or generic dns ptr-records",
        ),
        ordered=(
            ("domain ", " mismatches client ip"),
            ("dns lookup failure: ", " try again later"),
            ("reverse dns lookup for host ", " failed permanently"),
            ("server access ", " forbidden by invalid rdns record of your mail server"),
            ("service permits ", " unverifyable sending ips"),
        ),
    ),
    "toomanyconn": Phrases(
        substrings=(
            "all available ips are at maximum connection limit",  # SendGrid
            "connection rate limit exceeded",
            "exceeds per-domain connection limit for",
            "has exceeded the max emails per hour ",
            "throttling failure: daily message quota exceeded",  # Amazon SES
            "throttling failure: maximum sending rate exceeded",  # Amazon SES
            "too many connections",
            "too many connections from your host.",  # Microsoft
            "too many concurrent smtp connections",  # Microsoft
            "too many errors from your ip",  # free.fr
            "too many recipients",  # NTT docomo
            "too many smtp sessions for this host",  # Sendmail daemon.c
            "trop de connexions, ",  # French
            "we have already made numerous attempts to deliver this message",
        ),
    ),
    "speeding": Phrases(
        substrings=(
            "mail sent from your ip address has been temporarily rate limited",
            "please try again slower",
            "receiving mail at a rate that prevents additional messages from being delivered",
        ),
    ),
    "norelaying": Phrases(
        substrings=(
            "as a relay",
            "email address is not verified.",
            "insecure mail relay",
            "is not permitted to relay through this server without authentication",
            "mail server requires authentication when attempting "
            "to send to a non-local e-mail address",
            "no relaying",
            "not a gateway",
            "not allowed to relay through this machine",
            "not an open relay, so get lost",
            "not local host",
            "relay access denied",  # Postfix
            "relay denied",
            "relay not permitted",
            "relaying denied",  # Sendmail
            "relaying mail to ",
            "specified domain is not allowed",
            "that domain isn't in my list of allowed rcpthost",  # qmail
            "this system is not configured to relay mail",
            "unable to relay ",
            "we don't handle mail for",
        ),
    ),
}
