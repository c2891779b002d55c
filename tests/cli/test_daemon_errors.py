"""Errors end to end against a real hyperd: the body's kind and exitCode, the client's typed
exception, and the CLI's one line and exit code."""

from __future__ import annotations

import docker
import pytest

from hyperctl.client import APIClient, InvalidArgumentError, NotFoundError


def _body(daemon, method: str, path: str, **kw) -> tuple[int, dict]:
    api = docker.APIClient(base_url=f"unix://{daemon.socket}")
    resp = getattr(api, f"_{method}")(api._url(path), **kw)
    return resp.status_code, resp.json()


def test_error_bodies_carry_the_kind_and_exit_code(bare_hyperd):
    assert _body(bare_hyperd, "get", "/containers/nope/json") == (
        404,
        {"message": "No such container: nope", "kind": "NotFound", "exitCode": 125},
    )
    status, body = _body(bare_hyperd, "post", "/containers/create", data=b"{not json")
    assert status == 400 and body["kind"] == "InvalidArgument" and body["exitCode"] == 125
    assert body["message"]


def test_docker_clients_still_read_the_message(bare_hyperd):
    client = bare_hyperd.client()
    with pytest.raises(docker.errors.NotFound) as exc:
        client.containers.get("nope")
    assert exc.value.explanation == "No such container: nope"


def test_the_client_raises_the_kind_the_daemon_sent(bare_hyperd):
    client = APIClient(f"unix://{bare_hyperd.socket}")
    with pytest.raises(NotFoundError) as exc:
        client.inspect_container("nope")
    assert (exc.value.kind, exc.value.status_code, exc.value.exit_code) == ("NotFound", 404, 125)
    with pytest.raises(InvalidArgumentError) as exc:
        client.create_container({"Image": "Bad:Ref!"})
    assert exc.value.kind == "InvalidArgument" and "Bad:Ref!" in exc.value.message


@pytest.mark.parametrize(
    "args, line",
    [
        (["stop", "nope"], "hyper: No such container: nope"),
        (["logs", "nope"], "hyper: No such container: nope"),
        (["rmi", "nope:1"], "hyper: No such image: nope:1"),
    ],
)
def test_the_cli_prints_one_line_and_exits_with_the_code(bare_hyperd, args, line):
    res = bare_hyperd.hyper(*args)
    assert (res.returncode, res.stdout, res.stderr.decode()) == (125, b"", line + "\n")
