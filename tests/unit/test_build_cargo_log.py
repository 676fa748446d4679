"""cargo-make (and sandbox) log parsing on realistic output."""

from __future__ import annotations

from runbook_lib.build.cargo_log import CargoLog, parse_line

# Shaped like a real `cargo make build-boot-artifacts-x86_64` run that fails in its last task:
# colour codes, a nested run for a `{ name, path }` dependency, tool output in between.
REAL = """\
\x1b[1m[cargo-make]\x1b[0m \x1b[32mINFO\x1b[0m - cargo make 0.37.24
[cargo-make] INFO - Calling cargo metadata to extract project info
[cargo-make] INFO - Cargo metadata done
[cargo-make] INFO - Build File: Makefile.toml
[cargo-make] INFO - Task: build-boot-artifacts-x86_64
[cargo-make] INFO - Profile: development
[cargo-make] INFO - Running Task: legacy-migration
[cargo-make] INFO - Running Task: mkdir-static-x86_64
[cargo-make] INFO - Execute Command: "/usr/bin/env" "bash" "/tmp/cargo-make/aB3dE.sh"
[cargo-make][1] INFO - cargo make 0.37.24
[cargo-make][1] INFO - Running Task: build-cli
[cargo-make][1] INFO - Execute Command: "cargo" "build" "--release" "-p" "forge-cli"
   Compiling forge-cli v0.1.0 (/src/carbide/cli)
    Finished `release` profile [optimized] target(s) in 2m 03s
[cargo-make][1] INFO - Build Done in 125.31 seconds.
[cargo-make] INFO - Skipping Task: mkosi-clean
[cargo-make] INFO - Running Task: mkosi-build
‣ Building default image
‣ Installing Debian
[cargo-make] INFO - Running Task: ipxe-x86_64
[cargo-make] INFO - Running Task: upload-boot-artifacts-ci
error: could not resolve host urm.example
[cargo-make] ERROR - Error while executing command, exit code: 6
[cargo-make] WARN - Build Failed.
"""


def test_parse_line_kinds():
    assert parse_line("[cargo-make] INFO - Running Task: foo").task == "foo"
    e = parse_line("[cargo-make] ERROR - Error while executing command, exit code: 105")
    assert e.kind == "error" and e.exit_code == 105
    assert parse_line("[cargo-make][2] INFO - Running Task: x").level == 2
    assert parse_line("[sandbox] INFO - Build Done in 81.50 seconds.").seconds == 81.5
    assert parse_line("[sandbox] WARN - Build Failed.").kind == "failed"
    assert parse_line("   Compiling forge v0.1") is None
    assert parse_line("[cargo-makeX] INFO - Running Task: no") is None
    assert parse_line("\x1b[1m[cargo-make]\x1b[0m \x1b[31mERROR\x1b[0m - boom").kind == "error"


def test_realistic_failed_run():
    log = CargoLog().feed_all(REAL)
    assert log.version == "0.37.24"
    assert log.started() == ["legacy-migration", "mkdir-static-x86_64", "mkosi-build", "ipxe-x86_64",
                             "upload-boot-artifacts-ci"]
    assert log.started(1) == ["build-cli"]
    assert log.skipped() == ["mkosi-clean"]
    assert log.failed and log.done_seconds is None
    assert log.failing_task() == "upload-boot-artifacts-ci"
    assert log.exit_code() == 6
    cmds = {t.name: t.commands for t in log.tasks}
    assert cmds["build-cli"] == ['"cargo" "build" "--release" "-p" "forge-cli"']
    assert cmds["mkdir-static-x86_64"][0].startswith('"/usr/bin/env" "bash"')


def test_nested_failure_is_the_first_cause():
    text = """\
[cargo-make] INFO - Running Task: build-boot-artifacts-x86_64
[cargo-make][1] INFO - Running Task: build-cli
error[E0425]: cannot find value `x` in this scope
[cargo-make][1] ERROR - Error while executing command, exit code: 101
[cargo-make][1] WARN - Build Failed.
[cargo-make] ERROR - Error while executing command, exit code: 1
[cargo-make] WARN - Build Failed.
"""
    log = CargoLog().feed_all(text)
    assert log.failing_task() == "build-cli"
    assert log.exit_code() == 101
    assert [e.level for e in log.errors] == [1, 0]


def test_successful_sandbox_run_and_progress_callback():
    seen = []
    log = CargoLog(on_task=lambda t: seen.append((t.name, t.skipped)))
    log.feed_all("""\
[sandbox] INFO - Running Task: create-ephemeral-image
[sandbox] INFO - Execute Command: mkosi --force build
[sandbox] INFO - Running Task: ipxe-x86_64
[sandbox] INFO - Running Task: build-boot-artifacts-x86_64
[sandbox] INFO - Build Done in 95.20 seconds.
""")
    assert seen == [("create-ephemeral-image", False), ("ipxe-x86_64", False),
                    ("build-boot-artifacts-x86_64", False)]
    assert log.done_seconds == 95.2 and not log.failed
    assert log.failing_task() is None and log.exit_code() is None


def test_error_without_exit_code_and_no_task():
    log = CargoLog().feed_all("[cargo-make] ERROR - Task \"nope\" not found\n[cargo-make] WARN - Build Failed.\n")
    assert log.first_error().exit_code is None
    assert log.failing_task() is None
    assert log.failed
