"""Screens over the views: help, confirmations, prompts, compose, and "daemon down"."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Static

from .completion import ReferenceSuggester, candidates
from .names import Names

__all__ = [
    "HELP",
    "ComposeScreen",
    "ConfirmScreen",
    "DownScreen",
    "HelpScreen",
    "PromptScreen",
]

#: The help overlay's text: every key, by view.
HELP = """\
[b]Everywhere[/b]
  ?          this help             q / escape  back (q on Home quits)
  h          home timeline         n           notifications
  /          search                P           your profile
  c          compose a post        ctrl+r      reload this view

[b]On an entry[/b]
  ↑ ↓ j k    move                  pgup pgdn   a page
  g G        first, last           escape      Home: back to the newest
  enter      its thread            p           its author's profile
  r          reply                 e           react (emoji)
  t          repost                d           delete (yours; asks first)
  x          block the author      m           mute the author (both ask first)
  y          copy the entry id     Y           copy the author's identity

[b]Profile[/b]
  f          follow / unfollow     tab         posts → following → followers

[b]Compose[/b]
  enter      send                  → (at end)  take the @name / #tag offered
  escape     cancel

Names: a bare name is your petname for someone; [i]~name (p2ps1…)[/i] is a name
they chose themselves. Markers: ● new, \\[deleted], \\[withheld] (payload not held
or refused here), \\[forked @seq] (the author signed two entries at one seq).
"""


class HelpScreen(ModalScreen[None]):
    """The key bindings, over whatever view is open."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 86; height: auto; border: round $accent; padding: 1 2;
                          background: $panel; }
    """
    BINDINGS = [  # noqa: RUF012
        Binding("escape,q,question_mark", "app.pop_screen", "Close"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True for yes."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 70; height: auto; border: thick $warning; padding: 1 2;
                             background: $panel; }
    """
    BINDINGS = [  # noqa: RUF012
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{escape(self.question)}\n\n[b]y[/b] yes    [b]n[/b] no", id="question")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PromptScreen(ModalScreen[str | None]):
    """One line of input (an emoji, say); dismisses with the text, or None."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 60; height: auto; border: round $accent; padding: 1 2;
                              background: $panel; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, label: str, value: str = "") -> None:
        super().__init__()
        self.label = label
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.label)
            yield Input(value=self.value, id="prompt")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ComposeScreen(ModalScreen[str | None]):
    """Write a post or a reply: a character count against the limit, and completion.

    Dismisses with the text to send, or None when cancelled.
    """

    DEFAULT_CSS = """
    ComposeScreen { align: center middle; }
    ComposeScreen > Vertical { width: 90%; max-width: 100; height: auto;
                               border: round $accent; padding: 1 2; background: $panel; }
    #count { color: $text-muted; }
    #count.over { color: $error; text-style: bold; }
    #offers { color: $text-muted; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, names: Names, limit: int, *, reply_to: str = "", quoting: str = "") -> None:
        super().__init__()
        self.names = names
        self.limit = limit
        self.reply_to = reply_to
        self.quoting = quoting

    def compose(self) -> ComposeResult:
        with Vertical():
            title = f"Reply to {self.quoting}" if self.reply_to else "New post"
            yield Static(f"[b]{title}[/b]", id="title")
            yield Input(
                placeholder="What's on your mind? @name mentions, #tag tags",
                suggester=ReferenceSuggester(self.names),
                id="text",
            )
            yield Static("", id="offers")
            yield Static(self._count(""), id="count")
            yield Static("[dim]enter send · → take the offer · escape cancel[/dim]")

    def _count(self, text: str) -> str:
        return f"{len(text)}/{self.limit}"

    def on_input_changed(self, event: Input.Changed) -> None:
        count = self.query_one("#count", Static)
        count.update(self._count(event.value))
        count.set_class(len(event.value) > self.limit, "over")
        offers = candidates(event.value, self.names, limit=5)
        self.query_one("#offers", Static).update(Text("  ".join(label for _, label in offers)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            self.notify("nothing to send", severity="warning")
            return
        if len(text) > self.limit:
            self.notify(f"over the limit of {self.limit} characters", severity="error")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DownScreen(Screen[None]):
    """Shown while no daemon answers: what to run, and the retries going on."""

    DEFAULT_CSS = """
    DownScreen { align: center middle; }
    DownScreen > Static { width: 90%; max-width: 100; height: auto; border: heavy $error;
                          padding: 1 2; }
    """
    BINDINGS = [Binding("q", "app.quit", "Quit")]  # noqa: RUF012

    def __init__(self, reason: str, command: str) -> None:
        super().__init__()
        self.reason = reason
        self.command = command
        self.attempt = 0
        self.retry_in = 0.0

    def compose(self) -> ComposeResult:
        yield Static(self._text(), id="down")
        yield Footer()

    def _text(self) -> str:
        retry = f"retrying in {self.retry_in:.0f} s" if self.retry_in else "retrying"
        return (
            "[b]No p2psocial daemon is running.[/b]\n\n"
            f"{escape(self.reason)}\n\n"
            f"Start one in another terminal with:\n\n    [b]{escape(self.command)}[/b]\n\n"
            f"[dim]{retry} (attempt {self.attempt}) · q quits[/dim]"
        )

    def update(self, reason: str, attempt: int, retry_in: float) -> None:
        """Show the latest failure and when the next attempt is."""
        self.reason, self.attempt, self.retry_in = reason, attempt, retry_in
        if self.is_mounted:
            self.query_one("#down", Static).update(self._text())
