"""Wiring in one place: settings -> engine, sessions, content, mailer, dispatcher."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nurture import redaction
from nurture.config import Settings, resolve_secret_key, spool_folder
from nurture.content import Content
from nurture.db import make_engine, make_read_engine, make_sessionmaker
from nurture.mail import Mailer, mailer_from_settings
from nurture.spool import Spool

if TYPE_CHECKING:
    from nurture.crm import CrmPusher
    from nurture.dispatch import Dispatcher


@dataclass
class Runtime:
    settings: Settings
    mailer_factory: Callable[[], Mailer] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        # From here on, no message or log of this process shows these secrets.
        redaction.conceal_settings(self.settings)

    def stop(self) -> None:
        """Begin a graceful stop (SIGTERM, SIGINT): no new work; the email in hand
        finishes within the grace period. Safe to call from a signal handler."""
        self.stopping.set()
        if "dispatcher" in self.__dict__:
            self.dispatcher.stop()

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def reader(self) -> Engine:
        """Single reads that must not wait for writers (the click's link lookup)."""
        return make_read_engine(self.settings.database_url)

    @cached_property
    def spool(self) -> Spool:
        """This process's tracking hits on their way to the database."""
        return Spool(spool_folder(self.settings), self.engine)

    @cached_property
    def content(self) -> Content:
        settings = self.settings
        return Content(
            settings.sequences_dir,
            settings.templates_dir,
            scoring_file=settings.scoring_file,
            routing_file=settings.routing_file,
            qualification_file=settings.qualification_file,
        )

    @cached_property
    def secret_key(self) -> str:
        key = resolve_secret_key(self.settings)
        redaction.conceal([key])  # it may come from the key file, not the settings
        return key

    def make_mailer(self) -> Mailer:
        if self.mailer_factory is not None:
            return self.mailer_factory()
        return mailer_from_settings(self.settings.smtp_url, self.settings.outbox_dir)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from nurture.dispatch import Dispatcher

        dispatcher = Dispatcher(
            self.settings, self.sessions, self.content, self.make_mailer, self.secret_key
        )
        if self.stopping.is_set():
            dispatcher.stop()
        return dispatcher

    @cached_property
    def crm(self) -> CrmPusher:
        from nurture.crm import CrmPusher

        return CrmPusher(self.settings, self.sessions)

    def close(self) -> None:
        if "dispatcher" in self.__dict__:
            self.dispatcher.close()
        if "spool" in self.__dict__:
            self.spool.close()  # the hits written so far go to the database first
        if "reader" in self.__dict__:
            self.reader.dispose()
        if "engine" in self.__dict__:
            self.engine.dispose()
