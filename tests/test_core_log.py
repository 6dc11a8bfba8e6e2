"""The log of internal errors: tracebacks in a rotating file in the data folder, never a secret."""

from __future__ import annotations

from engine.core.log import (
    DATA_DIR_ENV,
    TRACEBACK_NOTE,
    internal_error_line,
    log_path,
    setup_logging,
    user_data_dir,
)
from engine.pacs.config import load_config


def _fail(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


def test_the_log_lives_in_the_data_folder_which_an_environment_variable_moves(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    assert user_data_dir() == tmp_path / "data"
    assert setup_logging() == log_path() == tmp_path / "data" / "logs" / "lucida.log"
    assert log_path().is_file()
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "lucida"


def test_an_internal_error_is_one_line_and_its_traceback_is_logged(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    line = internal_error_line(_fail("boom\nsecond line"), "a test")
    assert line == f"internal error (RuntimeError: boom second line); {TRACEBACK_NOTE} {log_path()}"
    text = log_path().read_text()
    assert "internal error in a test" in text and "Traceback (most recent call last)" in text
    assert 'raise RuntimeError(message)' in text


def test_credentials_never_reach_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    node_file = tmp_path / "pacs.toml"
    node_file.write_text('[nodes.web]\ndicomweb = "https://pacs.example/dicom-web"\n'
                         'token_env = "HOSPITAL_AUTH"\n')
    monkeypatch.setenv("HOSPITAL_AUTH", "q9-opaque-node-token")
    token = load_config(node_file).node("web").token()
    line = internal_error_line(_fail(
        f"GET https://alice:hunter2@pacs.example/wado: 401, sent {token}, "
        "Authorization: Bearer abc.def-ghi, password=pa55word"), "a retrieve")
    text = log_path().read_text()
    for secret in ("hunter2", "q9-opaque-node-token", "abc.def-ghi", "pa55word"):
        assert secret not in text and secret not in line
    assert "https://***@pacs.example/wado" in text
