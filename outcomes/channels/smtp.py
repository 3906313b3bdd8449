"""Email over SMTP (``smtplib``): STARTTLS, implicit TLS or none, with a timeout on every
step, and a standard message (``EmailMessage`` with Date, Message-ID, Auto-Submitted)."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from .. import clock
from .base import Channel, Config, Message, PermanentFailure, Receipt, TemporaryFailure
from .contacts import email_address

#: SMTP_SECURITY's values and the port each uses unless SMTP_PORT says otherwise
#: (RFC 8314: submission with STARTTLS on 587, implicit TLS on 465; plain relay on 25).
SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def compose(message: Message, recipient: str, config: Config) -> EmailMessage:
    """The email for ``message``: plain text, its link on a line of its own, from SMTP_FROM
    under the clinic's sender name."""
    sender = config["SMTP_FROM"]
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = formataddr((message.sender_name, sender))
    mail["To"] = recipient
    mail["Date"] = format_datetime(clock.utcnow())
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    # RFC 3834: machine-sent, so out-of-office replies and the like are not sent back.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(f"{message.body}\n\n{message.link}\n")
    return mail


def connect(config: Config) -> smtplib.SMTP:
    """A connection to the SMTP server, secured as SMTP_SECURITY says (certificates checked
    against the system's authorities) and signed in when SMTP_USERNAME is set."""
    host, port, timeout = config["SMTP_HOST"], config["SMTP_PORT"], config["NOTIFICATION_TIMEOUT"]
    security = config["SMTP_SECURITY"]
    context = ssl.create_default_context()
    if security == "tls":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if security == "starttls":
            server.starttls(context=context)
        if config["SMTP_USERNAME"]:
            server.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
    except BaseException:
        server.close()
        raise
    return server


def _refusal(what: str, code: int) -> PermanentFailure | TemporaryFailure:
    """A 5xx reply is the server's final word on this message; a 4xx asks to try later."""
    reason = f"the mail server refused the {what} ({code})"
    return PermanentFailure(reason) if code >= 500 else TemporaryFailure(reason)


class EmailChannel(Channel):
    name = "email"
    label = "Email"
    address_label = "email address"

    def configured(self, config: Config) -> bool:
        return bool(config.get("SMTP_HOST"))

    def normalise_address(self, address: str, config: Config) -> str:
        return email_address(address)

    def deliver(self, message: Message, address: str, config: Config) -> Receipt:
        mail = compose(message, address, config)
        server: smtplib.SMTP | None = None
        try:
            server = connect(config)
            server.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            (code, _reply), = error.recipients.values()
            raise _refusal("recipient", code) from None
        except smtplib.SMTPDataError as error:
            raise _refusal("message", error.smtp_code) from None
        except smtplib.SMTPAuthenticationError as error:
            raise TemporaryFailure("the mail server refused SMTP_USERNAME and SMTP_PASSWORD "
                                   f"({error.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            raise TemporaryFailure("the mail server does not offer STARTTLS "
                                   "(or sign-in); check SMTP_SECURITY") from None
        except smtplib.SMTPResponseException as error:
            raise TemporaryFailure(f"the mail server answered {error.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as error:
            # Unreachable, timed out, disconnected, or a certificate that did not verify.
            raise TemporaryFailure(
                f"the mail server could not be reached ({type(error).__name__})") from None
        finally:
            if server is not None:
                hang_up(server)
        return Receipt(self.name, mail["Message-ID"])


def hang_up(server: smtplib.SMTP) -> None:
    """End the session with QUIT. A message the server accepted (its 250 to DATA) is its
    responsibility from then on (RFC 5321 §4.1.1.4): a QUIT answered late, with another code
    or not at all changes nothing, and must not become a failure that sends it again."""
    try:
        server.quit()
    except (smtplib.SMTPException, OSError):
        server.close()
