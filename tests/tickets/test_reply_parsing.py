"""Reply parsing on its own: a staff reply split into checked commands and the text for the requester.

tests/tickets/test_technicians.py runs replies through the whole desk; these call `parse_reply`
and each command's `check` directly.
"""

from __future__ import annotations

import pytest

from tickets.commands import BY_NAME, COMMAND_HELP, COMMANDS, Checks, added_address
from tickets.reply_parsing import CommandLine, parse_reply

CATEGORIES = ("network", "printing", "triage")
CHECKS = Checks(
    categories=CATEGORIES,
    technicians={"alicja@example.test", "bartek@example.test"},
    is_ours=lambda address: address.endswith("@support.example.test"),
)


def test_commands_at_the_top_and_the_rest_for_the_requester() -> None:
    reply = parse_reply(
        "#status in_progress\n\n#priority HIGH\nHello Anna,\n\n#note this is text now\n", CHECKS
    )
    assert reply.errors == ()
    assert reply.commands == (
        CommandLine("status", "in_progress", 1, "#status in_progress"),
        CommandLine("priority", "HIGH", 3, "#priority HIGH"),
    )
    assert reply.public_text == "Hello Anna,\n\n#note this is text now"


def test_a_reply_of_commands_only_has_no_text_for_the_requester() -> None:
    reply = parse_reply("#resolve replaced the toner\r\n#close\r\n", CHECKS)
    assert [(c.name, c.arg) for c in reply.commands] == [("resolve", "replaced the toner"), ("close", "")]
    assert reply.errors == ()
    assert reply.public_text == ""


def test_a_reply_without_commands_is_all_text() -> None:
    reply = parse_reply("  \nIt works again.\n-- \nAlicja", CHECKS)
    assert reply.commands == () and reply.errors == ()
    assert reply.public_text == "It works again.\n-- \nAlicja"


def test_command_names_are_case_insensitive_and_arguments_trimmed() -> None:
    reply = parse_reply("#Category   Printing  ", CHECKS)
    assert reply.commands == (CommandLine("category", "Printing", 1, "#Category   Printing"),)


def test_every_bad_line_is_reported_with_its_number_and_why() -> None:
    reply = parse_reply(
        "#status resolved\n#bogus x\n#assign nobody\n#add Anna <anna@example.com>\nText", CHECKS
    )
    assert reply.commands == ()
    assert [(e.line_number, e.line) for e in reply.errors] == [
        (1, "#status resolved"),
        (2, "#bogus x"),
        (3, "#assign nobody"),
        (4, "#add Anna <anna@example.com>"),
    ]
    assert "resolve with #resolve" in reply.errors[0].why
    assert reply.errors[1].why.startswith("unknown command #bogus; the commands are: #status, #priority")
    assert str(reply.errors[2]) == "line 3: '#assign nobody': #assign takes a technician's email address"
    assert reply.public_text == "Text"


def test_the_help_lists_every_command_of_the_table_in_order() -> None:
    assert [line.split()[0] for line in COMMAND_HELP] == [f"#{c.name}" for c in COMMANDS]
    assert set(BY_NAME) == {
        "status",
        "priority",
        "category",
        "assign",
        "escalate",
        "note",
        "resolve",
        "close",
        "add",
        "publish",
    }


@pytest.mark.parametrize(
    ("name", "good", "bad", "why"),
    [
        ("status", "waiting", "closed", "#status takes one of open, in_progress, waiting"),
        ("priority", "urgent", "asap", "#priority takes one of low, normal, high, urgent"),
        ("category", "NETWORK", "coffee", "unknown category 'coffee'; known: network, printing, triage"),
        (
            "assign",
            "Alicja@example.test",
            "zofia@example.test",
            "zofia@example.test is not an active technician",
        ),
        ("escalate", "needs a specialist", "", "#escalate needs a reason"),
        ("note", "called her back", "", "#note needs the text of the note on the same line"),
        ("resolve", "replaced the fuser", "", "#resolve needs a resolution note"),
        ("close", "", "now", "#close takes nothing after it"),
        ("add", "<Colleague@Example.com>", "a@b.com, c@d.com", "#add takes one email address"),
    ],
)
def test_each_command_checks_its_argument(name: str, good: str, bad: str, why: str) -> None:
    command = BY_NAME[name]
    assert command.check(good, CHECKS) == ""
    assert command.check(bad, CHECKS).startswith(why)


def test_assign_without_a_roster_to_check_takes_any_address() -> None:
    assert BY_NAME["assign"].check("zofia@example.test", Checks(CATEGORIES)) == ""


def test_add_refuses_the_desks_own_address() -> None:
    assert BY_NAME["add"].check("help+t1@support.example.test", CHECKS) == (
        "help+t1@support.example.test is the helpdesk's own address"
    )


@pytest.mark.parametrize(
    ("arg", "address"),
    [
        ("anna@example.com", "anna@example.com"),
        ("<Anna@Example.COM>", "anna@example.com"),
        ("  anna@example.com  ", "anna@example.com"),
        ("Anna <anna@example.com>", None),
        ("anna@example.com bob@example.com", None),
        ("anna", None),
        ('"a,b"@example.com', None),
    ],
)
def test_added_address_is_one_bare_address(arg: str, address: str | None) -> None:
    assert added_address(arg) == address
