"""Bodies and attachments (issue 10): every inline text part in order, the alternative chosen by
content, nothing after `</html>` lost, and every other part an attachment with a stable name."""

from __future__ import annotations

import time

import pytest

from intake.config import IntakeConfig
from intake.parse import parse_email
from models.mail import ParsedEmail

HEAD = b"From: Ola <ola@example.pl>\r\nTo: support@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n"


def multipart(subtype: str, *parts: bytes, boundary: bytes = b"b1") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        b"Content-Type: multipart/"
        + subtype.encode()
        + b'; boundary="'
        + boundary
        + b'"\r\n\r\n'
        + body
        + b"--"
        + boundary
        + b"--\r\n"
    )


def part(ctype: str, content: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"Content-Type: {ctype}\r\n{extra}\r\n{content}".encode()


def parsed(tree: bytes) -> ParsedEmail:
    return parse_email(HEAD + tree, IntakeConfig())


PLAIN = "Hello, since this morning the printer on the third floor prints only blank pages."
HTML = f"<html><body><p>{PLAIN}</p></body></html>"


def test_a_plain_alternative_that_says_it_all_is_the_body() -> None:
    mail = parsed(multipart("alternative", part("text/plain", PLAIN), part("text/html", HTML)))
    assert (mail.text, mail.html_only) == (PLAIN, False)


@pytest.mark.parametrize(
    "plain",
    [
        "This message is in HTML format. Please view it in an HTML-capable mail client.",
        "",
        "Hello,",  # only the first line of what the HTML says
    ],
)
def test_a_plain_alternative_that_lacks_what_the_html_says_gives_way(plain: str) -> None:
    mail = parsed(multipart("alternative", part("text/plain", plain), part("text/html", HTML)))
    assert mail.text == PLAIN
    assert mail.html_only


def test_tiny_alternatives_that_differ_keep_the_plain_one() -> None:
    mail = parsed(multipart("alternative", part("text/plain", "Sasha"), part("text/html", "<p>Hi</p>")))
    assert mail.text == "Sasha"


def test_every_inline_text_part_of_a_mixed_mail_in_order() -> None:
    mail = parsed(
        multipart(
            "mixed",
            part("text/plain", "First, the intro."),
            part(
                "image/png",
                "iVBORw0KGgo=",
                "Content-Transfer-Encoding: base64",
                "Content-Disposition: inline",
            ),
            part("text/html", "<p>Second, the main message.</p>"),
            part("text/plain", "Third, the signature."),
        )
    )
    assert mail.text == "First, the intro.\nSecond, the main message.\nThird, the signature."
    assert [a.filename for a in mail.attachments] == ["part-1.png"]


def test_text_after_the_end_of_the_html_document_is_kept() -> None:
    mail = parse_email(
        HEAD + b"Content-Type: text/html\r\n\r\n<html><body><p>One</p></body></html>\r\n<p>Two</p>"
        b"<html><body><p>Three</p></body></html>tail four",
        IntakeConfig(),
    )
    assert mail.text == "One\n\nTwo\n\nThree\n\ntail four"


def test_named_and_attached_text_parts() -> None:
    mail = parsed(
        multipart(
            "mixed",
            part("text/plain", "The body."),
            part("text/plain", "inline named", 'Content-Disposition: inline; filename="shown.txt"'),
            part("text/plain; name=log.txt", "a log"),
            part("text/plain", "attached", "Content-Disposition: attachment"),
        )
    )
    # An inline text part is body text, and its name makes it a file as well (RFC 2183).
    assert mail.text == "The body.\ninline named"
    assert [a.filename for a in mail.attachments] == ["shown.txt", "log.txt", "part-3.txt"]


def test_a_mail_of_named_text_parts_only_still_has_a_body() -> None:
    mail = parsed(multipart("mixed", part("text/plain; name=report.txt", "Disk full on srv-12")))
    assert mail.text == "Disk full on srv-12"
    assert [a.filename for a in mail.attachments] == ["report.txt"]


INNER = b"From: a@example.com\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" + (
    b"--i\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n"
    b'--i\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n'
    b"--i--\r\n"
)


def test_a_mail_shown_inline_is_read_as_part_of_this_one() -> None:
    # A bounce's returned mail, a digest: its text follows the body, its files are this mail's.
    mail = parsed(
        multipart("mixed", part("text/plain", "Outer text."), b"Content-Type: message/rfc822\r\n\r\n" + INNER)
    )
    assert mail.text == "Outer text.\nInner text."
    assert [a.filename for a in mail.attachments] == ["scan.pdf"]


def test_an_attached_mail_is_one_file() -> None:
    attached = b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + INNER
    mail = parsed(multipart("mixed", part("text/plain", "Outer text."), attached))
    assert mail.text == "Outer text."
    assert [(a.filename, a.content_type) for a in mail.attachments] == [("message-1.eml", "message/rfc822")]
    content = mail.attachments[0].content
    assert content is not None
    assert b"Inner text." in content
    assert b"JVBERi0=" in content


def test_a_delivery_status_is_one_attachment() -> None:
    status = b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    mail = parsed(multipart("report; report-type=delivery-status", part("text/plain", "It bounced."), status))
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("part-1.txt", "message/delivery-status")
    ]
    content = mail.attachments[0].content
    assert content is not None
    assert b"Status: 5.1.1" in content


def test_inline_images_are_named_by_their_content_id() -> None:
    mail = parsed(
        multipart(
            "related",
            part("text/html", '<p>See <img src="cid:image001.jpg@01D9"></p>'),
            part(
                "image/jpeg",
                "/9j/",
                "Content-ID: <image001.jpg@01D9.A1B2C3D0>",
                "Content-Transfer-Encoding: base64",
            ),
            part("image/png", "iVBO", "Content-ID: <ii_lq3x8k2f1>", "Content-Transfer-Encoding: base64"),
            part("image/gif", "R0lG", "Content-Transfer-Encoding: base64"),
        )
    )
    assert [a.filename for a in mail.attachments] == ["image001.jpg", "ii_lq3x8k2f1.png", "part-3.gif"]


def test_a_nested_multipart_that_reused_the_outer_boundary_loses_no_attachment() -> None:
    # Outlook Express for Mac: the inner "--b1--" closes the outer part too; the rest is the epilogue.
    inner = (
        part("multipart/alternative; boundary=b1", "") + b"\r\n--b1\r\n" + part("text/plain", "Body text.")
    )
    tree = (
        multipart("mixed", inner)
        + b"\r\n--b1\r\n"
        + part(
            'image/gif; name="xx.gif"',
            "R0lG",
            "Content-Disposition: attachment",
            "Content-Transfer-Encoding: base64",
        )
        + b"\r\n--b1--\r\n"
    )
    assert [a.filename for a in parsed(tree).attachments] == ["xx.gif"]


def test_a_multipart_whose_boundary_never_comes_is_read_with_the_one_it_uses() -> None:
    tree = (
        b"Content-Type: multipart/mixed; boundary=DECLARED\r\n\r\npreamble\r\n--USED\r\n"
        + part("text/plain", "message 1")
        + b"\r\n--USED\r\n"
        + part("text/plain", "message 2")
        + b"\r\n--USED--\r\n"
    )
    assert parsed(tree).text == "message 1\nmessage 2"


def test_a_multipart_marked_as_an_attachment_gives_files_not_text() -> None:
    double = multipart(
        "appledouble",
        part("application/applefile", "AAUWBw==", "Content-Transfer-Encoding: base64"),
        part('text/plain; name="notes.txt"', "private notes"),
        boundary=b"b2",
    ).replace(
        b"Content-Type: multipart/appledouble;",
        b"Content-Disposition: attachment\r\nContent-Type: multipart/appledouble;",
    )
    mail = parsed(multipart("mixed", part("text/plain", "See attached."), double))
    assert mail.text == "See attached."
    assert [a.filename for a in mail.attachments] == ["part-1.bin", "notes.txt"]


@pytest.mark.timeout(120)
def test_deep_nesting_is_bounded() -> None:
    depth = 400
    tree = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n" % (i, i) for i in range(depth)
        )
        + b"Content-Type: text/plain\r\n\r\ndeep text\r\n"
        + b"".join(b"--d%d--\r\n" % i for i in reversed(range(depth)))
    )
    started = time.perf_counter()
    mail = parse_email(HEAD + tree, IntakeConfig())
    assert time.perf_counter() - started < 5.0
    # What lies deeper than MAX_DEPTH is kept whole, as one part (its bytes, or why not).
    assert mail.text == ""
    assert [a.filename for a in mail.attachments] == ["part-1.bin"]


def test_an_html_part_without_a_mime_charset_is_read_in_the_one_its_meta_names() -> None:
    html = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"></head>'
    data = (
        HEAD
        + b"Content-Type: text/html\r\n\r\n"
        + (html + "<body>Принтер не работает</body></html>").encode("cp1251")
    )
    assert parse_email(data, IntakeConfig()).text == "Принтер не работает"


def test_a_plain_alternative_that_is_the_html_source_gives_way() -> None:
    mail = parsed(multipart("alternative", part("text/plain", HTML), part("text/html", HTML)))
    assert mail.text == PLAIN


def test_an_html_part_labelled_with_a_charset_no_codec_reads_uses_its_meta() -> None:
    html = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5"></head>'
    data = (
        HEAD
        + b"Content-Type: text/html; charset=chinesebig5x\r\n\r\n"
        + (html + "<body>您還在用</body></html>").encode("big5")
    )
    assert parse_email(data, IntakeConfig()).text == "您還在用"
