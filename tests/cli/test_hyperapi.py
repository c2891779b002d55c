"""hyperapi: the client and the daemon share it, but not each other; one set of error kinds."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import hyperapi
import hyperctl
from hyperapi import errors as e

ROOT = Path(__file__).resolve().parents[2]


def _imported_after(code: str) -> set[str]:
    """Top-level packages of hyper present in sys.modules after running ``code`` afresh."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert res.returncode == 0, res.stderr
    return {m.split(".")[0] for m in json.loads(res.stdout.splitlines()[-1])}


def _modules(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_importing_the_cli_does_not_import_the_daemon():
    assert "hyperd" not in _imported_after("import hyperctl.cli")


def test_no_hyperctl_module_imports_the_daemon():
    names = _modules(hyperctl)
    assert "hyperctl.cli" in names and "hyperctl.client" in names
    assert "hyperd" not in _imported_after("\n".join(f"import {n}" for n in names))


def test_hyperapi_imports_neither_side():
    names = _modules(hyperapi)
    assert {"hyperapi.errors", "hyperapi.portspec", "hyperapi.units"} <= set(names)
    loaded = _imported_after("\n".join(f"import {n}" for n in names))
    assert "hyperd" not in loaded and "hyperctl" not in loaded


@pytest.mark.parametrize(
    "cls, kind, status",
    [
        (e.HyperError, "Internal", 500),
        (e.InvalidArgument, "InvalidArgument", 400),
        (e.Unauthorized, "Unauthorized", 401),
        (e.NotFound, "NotFound", 404),
        (e.Conflict, "Conflict", 409),
        (e.Unavailable, "Unavailable", 503),
    ],
)
def test_each_kind_has_its_status_and_exit_code_125(cls, kind, status):
    assert e.KINDS[kind] is cls and e.KIND_BY_STATUS[status] == kind
    err = cls("boom", detail=1)
    assert (err.kind, err.status, err.exit_code, err.message, str(err)) == (
        kind,
        status,
        125,
        "boom",
        "boom",
    )
    assert err.to_dict() == {"message": "boom", "kind": kind, "exitCode": 125, "detail": 1}


def test_exec_failures_carry_docker_exit_codes():
    assert (e.CannotExecute.kind, e.CannotExecute.status, e.CannotExecute.exit_code) == (
        "InvalidArgument",
        400,
        126,
    )
    assert e.CommandNotFound("sh: nope").to_dict() == {
        "message": "sh: nope",
        "kind": "InvalidArgument",
        "exitCode": 127,
    }


def test_a_subclass_setting_only_status_takes_that_status_kind():
    class Refused(e.HyperError):
        status = 401

    class Upstream(e.HyperError):
        status = 502  # no kind of its own: stays Internal

    class Busy(e.NotFound):
        exit_code = 3

    assert (Refused.kind, Refused.status) == ("Unauthorized", 401)
    assert (Upstream.kind, Upstream.status) == ("Internal", 502)
    assert Busy("x").to_dict() == {"message": "x", "kind": "NotFound", "exitCode": 3}
    assert isinstance(Refused("x"), e.HyperError) and isinstance(Busy("x"), e.NotFound)


def test_data_cannot_override_the_fixed_fields():
    err = e.Conflict("name in use", kind="Other", exitCode=1)
    assert err.to_dict() == {"message": "name in use", "kind": "Conflict", "exitCode": 125}


def test_the_daemon_raises_the_shared_kinds():
    from hyperd import errors as d
    from hyperd.images import errors as img

    for name in ("HyperError", "NotFound", "Conflict", "InvalidArgument"):
        assert getattr(d, name) is getattr(e, name)
    assert img.ImageNotFound("x").to_dict()["kind"] == "NotFound"
    assert img.InvalidReference("x").to_dict()["kind"] == "InvalidArgument"
    assert (img.AuthError.kind, img.AuthError.status) == ("Unauthorized", 401)
    assert (img.UnsafeLayerEntry.kind, img.UnsafeLayerEntry.status) == ("InvalidArgument", 400)
    assert (img.RegistryError.kind, img.RegistryError.status) == ("Internal", 502)
