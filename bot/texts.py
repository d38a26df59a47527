"""The bot's commands, as shown in Telegram's menu and in /help (one description and one example each)."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import BotCommand


@dataclass(frozen=True)
class Command:
    name: str
    menu: str
    usage: str
    example: str


COMMANDS: list[Command] = [
    Command("call", "Place a call", "/call <number|contact> <task> — the agent calls and works on the task",
            "/call +1 212 555 0100 Ask for the status of claim 4411 for Jane Doe"),
    Command("hangup", "Hang up the live call", "/hangup — end the live call now", "/hangup"),
    Command("transfer", "Transfer the live call", "/transfer [number] — put the callee through to a number "
            "(no number: your callback number, i.e. put you on)", "/transfer"),
    Command("say", "Make the agent say something", "/say <text> — the agent says exactly this", "/say Please "
            "hold on a second"),
    Command("calls", "Recent calls", "/calls — your last calls with their outcome", "/calls"),
    Command("transcript", "Transcript of a call", "/transcript <call number> — the full transcript as a file",
            "/transcript 12"),
    Command("contacts", "Saved contacts", "/contacts [add <name> <number> | remove <name>] — names for "
            "numbers",
            "/contacts add aetna +1 800 555 0199"),
    Command("profile", "Your profile", "/profile [name|org|callback|timezone|facts|confirm <value>] — "
            "what the agent may tell about you", "/profile callback +1 212 555 0100"),
    Command("help", "How to use the bot", "/help — this list", "/help"),
]
# Issue 6 adds /schedule, /jobs and /cancel by appending to COMMANDS from its handler module.

INTRO = (
    "I place phone calls for you with an AI agent and show them here live. While a call runs, just type "
    "to give the agent an instruction (reply to a call's card if several run), or use the buttons on its "
    "card."
)


def bot_commands() -> list[BotCommand]:
    return [BotCommand(c.name, c.menu) for c in COMMANDS]


def help_text() -> str:
    parts = [INTRO, ""]
    for command in COMMANDS:
        parts.append(f"{command.usage}\n   e.g. {command.example}")
    return "\n".join(parts)


def refusal(user_id: int) -> str:
    return (f"Sorry, this bot is private. Your Telegram user id is {user_id}: if you know the owner, ask "
            "them to add it to TELEGRAM_ALLOWED_USERS.")
