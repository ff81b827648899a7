"""Every ``battletracker …`` command the operator's docs and the README show exists, with
the options shown: a guide that names a command the program lacks is a broken guide."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from battletracker.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("docs/operator.md", "README.md")
#: The volunteer's ``node`` commands are documented and tested with the node itself.
ELSEWHERE = {"node"}


def _commands(doc: str) -> list[list[str]]:
    text = (ROOT / doc).read_text()
    out = []
    inline = re.findall(r"(?<!`)`(battletracker [^`]+)`", text)
    for block in [*re.findall(r"```sh\n(.*?)```", text, re.S), *inline]:
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if "battletracker " not in line:
                continue
            words = shlex.split(line.replace("$(", "").replace(")", ""), comments=True)
            for i, word in enumerate(words):
                # the program itself: first on the line, after VAR=value assignments, or
                # run in a compose service (docker-compose exec worker battletracker …)
                invoked = word == "battletracker" and (
                    all("=" in w for w in words[:i]) or words[max(0, i - 2)] in ("exec", "--rm"))
                if invoked and i + 1 < len(words):
                    out.append(words[i + 1:])
                    break
    return out


CASES = [(doc, words) for doc in DOCS for words in _commands(doc)]


def test_the_docs_show_the_operator_commands() -> None:
    shown = {" ".join(w[:2]) for _, w in CASES}
    assert {"doctor", "ranges show", "ranges set", "cycle list", "cycle retry",
            "export kibana", "db upgrade"} <= shown | {w[0] for _, w in CASES}


@pytest.mark.parametrize(("doc", "words"), CASES, ids=[" ".join(w) for _, w in CASES])
def test_a_documented_command_exists_with_its_options(doc: str, words: list[str]) -> None:
    if words[0] in ELSEWHERE:
        return
    command: click.Command = main
    ctx = click.Context(main)
    for word in words:
        if word.startswith("-"):
            break
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, word)
        if sub is None:
            break
        command = sub
    assert command is not main, f"{doc}: 'battletracker {' '.join(words)}' names no command"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    known |= {"--help"}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{doc}: {command.name} has no {word}"


def test_every_route_docs_api_shows_is_served_and_every_api_route_is_documented() -> None:
    from battletracker.settings import Settings
    from battletracker.web.app import create_app
    from battletracker.web.secret import new_secret_key

    app = create_app(Settings(secret_key=new_secret_key()))
    # the schema lists every JSON route; these few are kept out of it on purpose
    outside = {("GET", p) for p in ("/metrics", "/api/docs", "/openapi.json", "/feed.atom",
                                    "/reports/{day}.png")}
    served = {(method.upper(), path) for path, ops in app.openapi()["paths"].items()
              for method in ops} | outside
    text = (ROOT / "docs/api.md").read_text()
    shown = {(m, re.sub(r"\?.*", "", p)) for m, p in
             re.findall(r"`(GET|POST) (/[^` ]*)`", text)}
    assert shown <= served, shown - served
    api = {(m, p) for m, p in served if p.startswith("/api/v1") and m in ("GET", "POST")}
    assert api <= shown, f"docs/api.md misses {sorted(api - shown)}"
