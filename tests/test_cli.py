"""The command line: migrate and manage accounts."""

from __future__ import annotations

import io

import pytest

from labelhub.cli import main


@pytest.fixture
def sqlite_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")


def test_migrate_applies_then_reports_up_to_date(sqlite_env, capsys):
    assert main(["migrate"]) == 0
    assert "applied 2 migration(s): 0001, 0002" in capsys.readouterr().out

    assert main(["migrate"]) == 0
    assert "database is up to date" in capsys.readouterr().out


def test_users_add_list_passwd_deactivate(sqlite_env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main(["users", "add", "Carol", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("other-password\n"))
    assert (
        main(["users", "add", "dave", "--role", "annotator", "--password-stdin"]) == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert main(["users", "passwd", "dave", "--password-stdin"]) == 0
    assert main(["users", "deactivate", "dave"]) == 0
    capsys.readouterr()

    assert main(["users", "list"]) == 0

    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split() == ["carol", "admin", "yes"]
    assert listing[2].split() == ["dave", "annotator", "no"]


def test_users_add_refuses_a_short_password(sqlite_env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))

    status = main(["users", "add", "erin", "--role", "annotator", "--password-stdin"])

    assert status == 1
    assert "password: must be at least 8 characters" in capsys.readouterr().err


def test_deactivating_the_last_admin_is_refused(sqlite_env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    main(["users", "add", "root", "--role", "admin", "--password-stdin"])

    assert main(["users", "deactivate", "root"]) == 1
    assert "last active admin" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    for args in (["--help"], ["serve", "--help"], ["users", "add", "--help"]):
        with pytest.raises(SystemExit) as leaving:
            main(args)
        assert leaving.value.code == 0
    assert "--password-stdin" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["", "has space", "semi;colon", "x" * 65, ".dot"])
def test_users_add_refuses_a_name_the_api_would_refuse(
    sqlite_env, monkeypatch, capsys, name
):
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-1\n"))

    status = main(["users", "add", name, "--role", "admin", "--password-stdin"])

    assert status == 1
    assert "username:" in capsys.readouterr().err


def test_a_password_is_not_asked_for_without_a_terminal(
    sqlite_env, monkeypatch, capsys
):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    status = main(["users", "add", "carol", "--role", "annotator"])

    assert status == 1
    assert "--password-stdin" in capsys.readouterr().err
