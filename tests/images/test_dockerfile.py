"""The Dockerfile parser, the word lexer and the config editor (commit/import --change)."""

from __future__ import annotations

import pytest

from hyperd.errors import InvalidArgument
from hyperd.images.build.dockerfile import parse, parse_instruction
from hyperd.images.build.lexer import expand, split
from hyperd.images.build.metadata import ConfigEditor, apply_changes, parse_duration


def test_continuations_comments_and_exec_form():
    df = parse(
        "# escape=\\\n"
        "FROM busybox AS first\n"
        "# a comment\n"
        "RUN echo a \\\n"
        "  # a comment inside the continuation\n"
        "\n"
        "  && echo b\n"
        'CMD ["echo", "hi"]\n'
        "cmd echo shell form\n"
    )
    cmds = [(i.cmd, i.line) for i in df.instructions]
    assert cmds == [("FROM", 2), ("RUN", 4), ("CMD", 8), ("CMD", 9)]
    run = df.instructions[1]
    assert run.args == "echo a   && echo b" and run.json is None
    assert df.instructions[2].json == ["echo", "hi"]
    assert df.instructions[3].json is None and df.instructions[3].args == "echo shell form"


def test_backtick_escape_directive():
    df = parse("# escape=`\nFROM x\nRUN echo a `\n  b\n")
    assert df.escape == "`"
    assert df.instructions[1].args == "echo a   b"


def test_flags_are_parsed_and_unknown_ones_refused():
    inst = parse_instruction("COPY --from=build --chown=1:2 /a /b")
    assert inst.flags == {"from": "build", "chown": "1:2"} and inst.args == "/a /b"
    with pytest.raises(InvalidArgument, match="Unknown flag: mount"):
        parse_instruction("RUN --mount=type=cache,target=/x echo hi")


def test_unknown_instruction_names_its_line():
    with pytest.raises(InvalidArgument, match="line 2: unknown instruction: FORM"):
        parse("FROM x\nFORM y\n")


def test_json_form_must_be_strings_else_shell_form():
    assert parse_instruction('CMD ["a", 1]').json is None
    assert parse_instruction("ENTRYPOINT [not json").json is None


def test_lexer_expansion_quotes_and_escapes():
    env = {"X": "x", "EMPTY": ""}
    words = split("a 'b $X' \"c $X\" \\$X ${X:+set} ${Y:-dflt} ${EMPTY:-e} ${EMPTY-e} $X$X", env)
    assert words == ["a", "b $X", "c x", "$X", "set", "dflt", "e", "", "xx"]
    assert expand("${Y:?needs Y}x", {"Y": "y"}) == "yx"
    with pytest.raises(InvalidArgument, match="needs Y"):
        expand("${Y:?needs Y}", {})


def test_env_pairs_see_the_environment_before_the_instruction():
    cfg = {"Env": ["A=old"]}
    ConfigEditor(cfg).apply(parse_instruction('ENV A=new B="two words" C=$A'))
    assert cfg["Env"] == ["A=new", "B=two words", "C=old"]
    ConfigEditor(cfg).apply(parse_instruction("ENV LEGACY a value with spaces"))
    assert cfg["Env"][-1] == "LEGACY=a value with spaces"


def test_metadata_instructions():
    cfg: dict = {}
    ed = ConfigEditor(cfg)
    for line in (
        "EXPOSE 80 53/udp 8000-8001",
        "LABEL \"a b\"=c d='e f'",
        "USER nobody",
        "WORKDIR /srv",
        "WORKDIR app",
        "VOLUME /data /logs",
        "STOPSIGNAL SIGINT",
        'SHELL ["/bin/bash", "-c"]',
        "CMD echo hi",
        "ONBUILD RUN echo triggered",
        "HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://localhost/",
    ):
        ed.apply(parse_instruction(line))
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["Labels"] == {"a b": "c", "d": "e f"}
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/srv/app"
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}} and cfg["StopSignal"] == "SIGINT"
    assert cfg["Cmd"] == ["/bin/bash", "-c", "echo hi"]  # the shell form runs under SHELL
    assert cfg["OnBuild"] == ["RUN echo triggered"]
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 90_000_000_000,
        "Retries": 3,
    }


def test_entrypoint_clears_an_inherited_cmd_but_not_one_given_here():
    cfg = {"Cmd": ["sh"]}
    ConfigEditor(cfg).apply(parse_instruction('ENTRYPOINT ["top"]'))
    assert cfg["Entrypoint"] == ["top"] and cfg["Cmd"] is None
    ed = ConfigEditor(cfg)
    ed.apply(parse_instruction('CMD ["-b"]'))
    ed.apply(parse_instruction('ENTRYPOINT ["top"]'))
    assert cfg["Cmd"] == ["-b"]


def test_apply_changes_accepts_docker_commit_changes_only():
    cfg = apply_changes({}, ["EXPOSE 8000", 'CMD ["bash"]', "USER foobar\nWORKDIR /x"])
    assert cfg == {
        "ExposedPorts": {"8000/tcp": {}},
        "Cmd": ["bash"],
        "User": "foobar",
        "WorkingDir": "/x",
    }
    with pytest.raises(InvalidArgument, match="run is not a valid change command"):
        apply_changes({}, ["RUN echo no"])


@pytest.mark.parametrize(
    "bad",
    ["EXPOSE http", "EXPOSE 70000", "STOPSIGNAL SIGNOPE", "VOLUME", "SHELL /bin/sh", "LABEL a"],
)
def test_bad_metadata_is_a_clear_error(bad):
    with pytest.raises(InvalidArgument):
        ConfigEditor({}).apply(parse_instruction(bad))


def test_durations():
    assert parse_duration("1h2m3s", "x") == 3_723_000_000_000
    assert parse_duration("500ms", "x") == 500_000_000
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration("5 minutes", "--interval")
