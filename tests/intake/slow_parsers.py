"""Parsers that misbehave on purpose, run by the parser's child process in tests (as "module:function")."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from intake.config import IntakeConfig
from intake.parse import parse_email
from models.mail import ParsedEmail


def sleepy(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Never answers about a mail that says "sleep-forever"."""
    if b"sleep-forever" in data:
        time.sleep(3600)
    return parse_email(data, config)


def spinning(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Burns the CPU in pure Python (holding its GIL) on a mail that says "spin-forever"."""
    while b"spin-forever" in data:
        pass
    return parse_email(data, config)


def crashing(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Dies as a segfaulting C library would on a mail that says "crash-now"."""
    if b"crash-now" in data:
        os.abort()
    return parse_email(data, config)


def failing(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Raises something no parser should, on a mail that says "fail-now"."""
    if b"fail-now" in data:
        raise KeyError("a bug in the parser")
    return parse_email(data, config)


def telling_pid(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Takes its time on a mail that says "take-time", and signs every subject with its pid."""
    if b"take-time" in data:
        time.sleep(0.5)
    mail = parse_email(data, config)
    return replace(mail, subject=f"{mail.subject} [parsed by {os.getpid()}]")


def parsed_by(subject: str) -> int:
    """The pid `telling_pid` signed a subject with."""
    return int(subject.rsplit("[parsed by ", 1)[1].rstrip("]"))
