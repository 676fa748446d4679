"""Progress lines mimic cargo-make so step 2's parser follows both."""

from __future__ import annotations

from runbook_lib.build import cargo_log
from runbook_lib.sandbox import progress


def test_lines_have_cargo_make_shape() -> None:
    assert progress.running_task("ipxe-x86_64") == "[sandbox] INFO - Running Task: ipxe-x86_64"
    assert progress.command_failed(3) == "[sandbox] ERROR - Error while executing command, exit code: 3"
    assert progress.command_failed(None).endswith("exit code: -1")
    assert progress.build_failed() == "[sandbox] WARN - Build Failed."
    assert progress.build_done(12.345) == "[sandbox] INFO - Build Done in 12.35 seconds."


def test_execute_command_quotes_argv() -> None:
    line = progress.execute_command(["mkosi", "--output-dir", "/tmp/a b", "build"])
    assert line == "[sandbox] INFO - Execute Command: mkosi --output-dir '/tmp/a b' build"


def test_lines_match_own_regex_and_step2_parser() -> None:
    lines = [progress.running_task("create-ephemeral-image"),
             progress.execute_command(["objcopy", "x"]),
             progress.command_failed(1), progress.build_failed(), progress.build_done(3.0)]
    kinds = []
    for ln in lines:
        assert progress.LINE_RE.match(ln), ln
        ev = cargo_log.parse_line(ln)
        assert ev is not None and ev.tool == "sandbox"
        kinds.append(ev.kind)
    assert kinds[0] == "running" and kinds[1] == "command" and kinds[-1] == "done"
    assert cargo_log.parse_line(progress.command_failed(7)).exit_code == 7
    assert cargo_log.parse_line("mkosi's own output") is None
